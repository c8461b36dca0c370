"""`python -m billstate_collections`: start the collections service."""

from billstate_collections.entrypoints.main import main

if __name__ == "__main__":
    main()
