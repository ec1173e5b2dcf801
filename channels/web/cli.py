"""`helpdesk-gateway operators ...`: create desk operators (argon2-hashed passwords) and API tokens.

Attached to the main command group in gateway/cli.py; it uses the core's `Accounts` service only.
"""

from __future__ import annotations

import sys

import click


def _accounts(ctx: click.Context):
    from ticketing.operators import Accounts

    core = ctx.obj.core()  # ctx.obj: gateway.cli.State
    return Accounts(core.sessions)


@click.group("operators")
def operators() -> None:
    """Operators of the web desk and API tokens of integrations."""


@operators.command("add")
@click.argument("username")
@click.option("--name", default=None, help="full name shown in the desk [default: the username]")
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of standard input")
@click.pass_context
def add(ctx: click.Context, username: str, name: str | None, password_stdin: bool) -> None:
    """Create an operator who can log in to the desk at /desk/."""
    from ticketing.operators import AccountError

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        info = _accounts(ctx).add(username, name or username, password)
    except AccountError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"operator {info.username} ({info.name}) created")


@operators.command("token")
@click.argument("name")
@click.pass_context
def token(ctx: click.Context, name: str) -> None:
    """Create a bearer token for an integration of the REST API; it is printed once and stored only hashed."""
    from ticketing.operators import AccountError

    try:
        value = _accounts(ctx).create_token(name)
    except AccountError as e:
        raise click.ClickException(str(e)) from None
    click.echo(value)


@operators.command("deactivate")
@click.argument("username")
@click.option("--reactivate", is_flag=True, help="let a deactivated operator log in again")
@click.pass_context
def deactivate(ctx: click.Context, username: str, reactivate: bool) -> None:
    """Stop an operator from logging in; their open sessions end at once."""
    from ticketing.operators import AccountError

    try:
        info = _accounts(ctx).set_active(username, reactivate)
    except AccountError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"operator {info.username} {'reactivated' if reactivate else 'deactivated: their sessions are ended'}")
