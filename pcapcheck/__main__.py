"""``python -m pcapcheck`` runs the command line."""

from pcapcheck.cli import main

if __name__ == "__main__":
    main()
