"""Client tokens: the token file, constant-time lookup, reloading, and the `tokens` commands."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from broker.commands.tokens import tokens_app
from broker.security import Principal, Role, TokenStore, add_token
from broker.security.tokens import TOKEN_PREFIX, TokenFile, TokenFileError, remove_token


def test_added_token_is_stored_only_as_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    token = add_token(path, "alice", tenant="acme", role="user")
    assert token.startswith(TOKEN_PREFIX) and len(token) >= 40
    text = path.read_text()
    assert token not in text
    assert hashlib.sha256(token.encode()).hexdigest() in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(text)["tokens"][0]["tenant"] == "acme"
    store = TokenStore.load(path)
    assert store.authenticate(token) == Principal("acme", Role.USER, "alice")
    assert store.authenticate(token + "x") is None
    assert store.authenticate("") is None


def test_each_token_maps_to_its_own_principal(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    alice = add_token(path, "alice", tenant="acme", role=Role.USER)
    root = add_token(path, "root", tenant="ops", role=Role.OPERATOR)
    store = TokenStore.load(path)
    assert store.authenticate(alice) == Principal("acme", Role.USER, "alice")
    principal = store.authenticate(root)
    assert principal is not None and principal.is_operator


def test_names_are_unique_and_fields_checked(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    add_token(path, "alice", tenant="acme", role="user")
    with pytest.raises(TokenFileError):
        add_token(path, "alice", tenant="other", role="user")
    with pytest.raises(ValueError):
        add_token(path, "bob", tenant="acme", role="admin")
    with pytest.raises(ValueError):
        add_token(path, "bob", tenant="a b", role="user")


@pytest.mark.parametrize(
    "content",
    [
        "tokens: 3\n",
        "- a\n",
        "tokens:\n  - {name: a, tenant: t, role: user}\n",
        "tokens:\n  - {name: a, tenant: t, role: user, sha256: xyz}\n",
        "tokens:\n  - {name: a, tenant: t, role: boss, sha256: " + "0" * 64 + "}\n",
        "tokens: [\n",
    ],
)
def test_malformed_token_files_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(content)
    with pytest.raises(TokenFileError):
        TokenStore.load(path)


def test_token_file_follows_edits_and_keeps_the_last_good_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    alice = add_token(path, "alice", tenant="acme", role="user")
    now_s = [0.0]
    tokens = TokenFile(path, check_interval_s=1.0, clock=lambda: now_s[0])
    bob = add_token(path, "bob", tenant="globex", role="user")
    assert tokens.authenticate(bob) is None  # not re-read before the interval
    now_s[0] = 1.0
    assert tokens.authenticate(bob) is not None
    assert remove_token(path, "alice")
    now_s[0] = 2.0
    assert tokens.authenticate(alice) is None
    path.write_text("tokens: [\n")
    now_s[0] = 3.0
    assert tokens.authenticate(bob) is not None


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    app.add_typer(tokens_app, name="tokens")
    return app


def test_tokens_commands(cli: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "tokens.yaml"
    added = runner.invoke(
        cli, ["tokens", "add", "root", "--tenant", "ops", "--role", "operator", "--file", str(path)]
    )
    assert added.exit_code == 0, added.output
    token = added.stdout.strip()
    assert token.startswith(TOKEN_PREFIX)
    assert token not in path.read_text()
    principal = TokenStore.load(path).authenticate(token)
    assert principal == Principal("ops", Role.OPERATOR, "root")
    listed = runner.invoke(cli, ["tokens", "list", "--file", str(path)])
    assert listed.stdout.split() == ["root", "ops", "operator"]
    assert token not in listed.output
    duplicate = runner.invoke(cli, ["tokens", "add", "root", "--tenant", "x", "--file", str(path)])
    assert duplicate.exit_code == 1
    bad_role = runner.invoke(
        cli, ["tokens", "add", "u", "--tenant", "x", "--role", "boss", "--file", str(path)]
    )
    assert bad_role.exit_code == 2
    removed = runner.invoke(cli, ["tokens", "remove", "root", "--file", str(path)])
    assert removed.exit_code == 0
    assert TokenStore.load(path).authenticate(token) is None
    again = runner.invoke(cli, ["tokens", "remove", "root", "--file", str(path)])
    assert again.exit_code == 1
