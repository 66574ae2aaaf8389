"""`python -m bot` is the `taskbot` command."""

from bot.cli import main

main()
