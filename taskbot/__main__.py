"""`python -m taskbot` is the `taskbot` command."""

from taskbot.bot.cli import main

main()
