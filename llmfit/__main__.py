"""`python -m llmfit` runs the command-line interface."""

from llmfit.cli.app import main

if __name__ == "__main__":
    main()
