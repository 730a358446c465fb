// A server-sent events reader over fetch: EventSource cannot send an Authorization header, and
// the token must not go in the URL. It reconnects with Last-Event-ID, so nothing is missed.
import { API } from "./auth.js";
import { authHeaders } from "./api.js";

export function follow(path, { onEvent, onState }) {
  const stop = new AbortController();
  let lastId = null;
  let wait = 500;

  async function connect() {
    while (!stop.signal.aborted) {
      try {
        const headers = authHeaders({ Accept: "text/event-stream" });
        if (lastId !== null) headers["Last-Event-ID"] = lastId;
        const response = await fetch(API + path, { headers, signal: stop.signal, credentials: "omit" });
        if (response.status === 404 || response.status === 405 || response.status === 401) {
          onState(response.status === 401 ? "signed out" : "unavailable");
          return;
        }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        onState("live");
        wait = 500;
        await read(response.body);
      } catch (error) {
        if (stop.signal.aborted) return;
      }
      onState("reconnecting");
      await new Promise((done) => setTimeout(done, wait));
      wait = Math.min(wait * 2, 15_000);
    }
  }

  async function read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let message = { event: "message", data: [], id: null };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
        if (line === "") {
          if (message.id !== null) lastId = message.id;
          if (message.data.length) onEvent(message.event, message.data.join("\n"));
          message = { event: "message", data: [], id: null };
          continue;
        }
        if (line.startsWith(":")) continue; // a keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let v = colon < 0 ? "" : line.slice(colon + 1);
        if (v.startsWith(" ")) v = v.slice(1);
        if (field === "event") message.event = v;
        else if (field === "data") message.data.push(v);
        else if (field === "id") message.id = v;
      }
    }
  }

  connect();
  return () => stop.abort();
}
