"""`python -m billstate_access_control`: start the access-control service."""

from billstate_access_control.entrypoints.main import main

if __name__ == "__main__":
    main()
