"""Start a taskbot worker (with the scheduler loop): the same as ``taskbot worker``."""

from bot.cli import main

if __name__ == "__main__":
    main(["worker"])
