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


ROLES = ("operator", "specialist", "supervisor", "admin")


@operators.command("add")
@click.argument("username")
@click.option("--name", default=None, help="full name shown in the desk [default: the username]")
@click.option("--role", type=click.Choice(ROLES), default="operator", show_default=True, help="level I operator, specialist of groups, supervisor, admin")
@click.option("--group", "groups", multiple=True, help="a support group the operator belongs to (repeatable)")
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of standard input")
@click.pass_context
def add(ctx: click.Context, username: str, name: str | None, role: str, groups: tuple[str, ...], password_stdin: bool) -> None:
    """Create an operator who can log in to the desk at /desk/."""
    from ticketing.operators import AccountError

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        info = _accounts(ctx).add(username, name or username, password, role)
        for group in groups:
            _member(ctx, group, info.username, True)
    except AccountError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"operator {info.username} ({info.name}, {info.role}) created")


def _member(ctx: click.Context, group: str, username: str, member: bool) -> None:
    from ticketing.groups import set_member
    from ticketing.inventory import RowError
    from ticketing.operators import AccountError

    try:
        set_member(ctx.obj.core().sessions, group, username, member)
    except RowError as e:
        raise AccountError(str(e)) from None


@operators.command("role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
@click.option("--group", "groups", multiple=True, help="also add the operator to this support group (repeatable)")
@click.option("--leave", "leave", multiple=True, help="take the operator out of this support group (repeatable)")
@click.pass_context
def role(ctx: click.Context, username: str, role: str, groups: tuple[str, ...], leave: tuple[str, ...]) -> None:
    """Set an operator's role, and the support groups they belong to."""
    from ticketing.operators import AccountError

    try:
        info = _accounts(ctx).set_role(username, role)
        for group in groups:
            _member(ctx, group, info.username, True)
        for group in leave:
            _member(ctx, group, info.username, False)
    except AccountError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"operator {info.username}: {info.role}")


@operators.command("token")
@click.argument("name")
@click.option("--operator", default=None, help="the operator the token acts as [default: a service account named NAME]")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(("read", "write", "admin")), help="repeatable [default: read, write]")
@click.pass_context
def token(ctx: click.Context, name: str, operator: str | None, scopes: tuple[str, ...]) -> None:
    """Create a bearer token of the REST API, owned by an operator or a service account; printed once, stored hashed."""
    from ticketing.operators import AccountError

    try:
        value = _accounts(ctx).create_token(name, operator=operator, scopes=scopes or ("read", "write"))
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


@operators.group("tokens")
def tokens() -> None:
    """The API tokens: list them, revoke one."""


@tokens.command("list")
@click.pass_context
def tokens_list(ctx: click.Context) -> None:
    """Every token: name, owner (an operator, or the service account), scopes, last use, state."""
    for t in _accounts(ctx).tokens():
        owner = t.operator or f"service:{t.name}"
        used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
        click.echo(f"{t.name}\t{owner}\t{','.join(t.scopes)}\t{used}\t{'revoked' if t.revoked else 'active'}")


@tokens.command("revoke")
@click.argument("name")
@click.pass_context
def tokens_revoke(ctx: click.Context, name: str) -> None:
    """Revoke a token by name: it stops working at once."""
    from ticketing.operators import AccountError

    try:
        _accounts(ctx).revoke_token(name)
    except AccountError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"token {name} revoked")
