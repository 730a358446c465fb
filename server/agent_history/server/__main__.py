from agent_history.server.cli import main

main()
