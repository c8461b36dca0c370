"""`python -m billstate_invoicing`: start the invoicing service."""

from billstate_invoicing.entrypoints.main import main

if __name__ == "__main__":
    main()
