from agent_history.cli import main

main()
