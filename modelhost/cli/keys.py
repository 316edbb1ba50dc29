"""`modelhost keys create | ls | delete`: the home's access keys, edited in HOME/keys.json directly.

Works whether or not a server runs on the home: a running server re-reads the file within a second.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from modelhost.errors import ModelhostError
from modelhost.security.keys import KeyStore
from modelhost.security.policy import parse_policy
from modelhost.settings import ServerSettings

HOME_OPTION = click.option(
    "--home", envvar="MODELHOST_HOME", default=None, help="data directory (default ~/.modelhost)"
)


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _store(home: str | None) -> KeyStore:
    return KeyStore(ServerSettings.from_environment(home=home).home)


def _read_policy(path: str) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text())
    except OSError as exc:
        _fail(f"cannot read the policy {path}: {exc.strerror}")
    except ValueError as exc:
        _fail(f"the policy {path} is not valid JSON: {exc}")
    try:
        parse_policy(document)
    except ModelhostError as exc:
        _fail(f"the policy {path} cannot be used: {exc}")
    assert isinstance(document, dict)
    return document


@click.group()
def keys() -> None:
    """Access keys: once one exists, every request must be signed (SigV4) or carry an API key."""


@keys.command(name="create")
@click.option("--name", default="modelhost", show_default=True, help="user name the key belongs to")
@click.option("--policy", "policy_file", default=None, help="IAM identity policy JSON file (default: full access)")
@click.option("--json", "as_json", is_flag=True, help="print UserName, AccessKeyId, SecretAccessKey, ApiKey as JSON")
@HOME_OPTION
def keys_create(name: str, policy_file: str | None, as_json: bool, home: str | None) -> None:
    """Create a key; its secret is shown only now."""
    policy = _read_policy(policy_file) if policy_file else None
    store = _store(home)
    try:
        key = store.create(name, policy)
    except (ModelhostError, OSError) as exc:
        _fail(str(exc))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "UserName": key.user_name,
                    "AccessKeyId": key.access_key_id,
                    "SecretAccessKey": key.secret_access_key,
                    "ApiKey": key.api_key,
                }
            )
        )
        return
    click.echo(f"UserName:        {key.user_name}")
    click.echo(f"AccessKeyId:     {key.access_key_id}")
    click.echo(f"SecretAccessKey: {key.secret_access_key}")
    click.echo(f"ApiKey:          {key.api_key}")
    scope = f"as its policy ({policy_file}) allows" if policy else "everything (no --policy given)"
    click.echo(f"This key may do {scope}. The secret is not shown again.", err=True)
    click.echo(f"Every request to a server on {store.path.parent} must now be signed or carry an API key.", err=True)


@keys.command(name="ls")
@HOME_OPTION
def keys_ls(home: str | None) -> None:
    """List keys (ids, users, policies; never secrets)."""
    try:
        rows = _store(home).list()
    except ModelhostError as exc:
        _fail(str(exc))
    if not rows:
        click.echo("(no keys: the server accepts any caller on loopback; create one with `modelhost keys create`)")
        return
    width = max(len(k.user_name) for k in rows)
    for k in rows:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(k.created_s))
        policy = "policy" if k.policy is not None else "full access"
        click.echo(f"{k.access_key_id}  {k.user_name:<{width}}  {created}  {policy}")


@keys.command(name="delete")
@click.argument("access_key_id")
@HOME_OPTION
def keys_delete(access_key_id: str, home: str | None) -> None:
    """Delete a key; requests signed with it fail from then on."""
    try:
        deleted = _store(home).delete(access_key_id)
    except ModelhostError as exc:
        _fail(str(exc))
    if not deleted:
        _fail(f"no key {access_key_id} (see `modelhost keys ls`)")
    click.echo(f"deleted {access_key_id}", err=True)
