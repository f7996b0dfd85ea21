"""The `edgemon` command: one entry point, each concern's commands live in its own module."""

import click

from . import __version__


@click.group()
@click.version_option(__version__, prog_name="edgemon")
def main():
    """Outfall edge monitoring: gateway, simulated analyzers, local stack and demo."""


def _register():
    # Imported here so that one broken concern does not take the whole CLI down at import time.
    from .gateway_cli import gateway, quarantine
    from .stack_cli import stack, simulate, demo

    for cmd in (gateway, quarantine, stack, simulate, demo):
        main.add_command(cmd)
    try:
        from .alarm_cli import alarms, sms
    except ImportError as exc:  # alarms must not take the rest of the CLI down
        import logging

        logging.getLogger(__name__).warning("alarm commands unavailable: %s", exc)
    else:
        main.add_command(sms)
        main.add_command(alarms)


_register()


if __name__ == "__main__":
    main()
