"""`python -m billstate_console`: start the console service."""

from billstate_console.entrypoints.main import main

if __name__ == "__main__":
    main()
