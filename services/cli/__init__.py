"""The `callbridge` command line: `main.py` parses and hands over, a module per command group
adds its subcommands (`add(commands)`), `arguments.py` says what a value may be. A command imports
what it runs when it runs: a service's process loads its own service, not the other three."""
