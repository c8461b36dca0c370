"""`python -m billstate_notifications`: start the notifications service."""

from billstate_notifications.entrypoints.main import main

if __name__ == "__main__":
    main()
