"""`basic_auth:` of the Prometheus endpoint: user names mapped to bcrypt hashes of
their passwords, as Prometheus' own web config (`basic_auth_users`) has them."""

from __future__ import annotations

import re
from typing import Any

import yaml

from ig_metrics.config.context import FileContext, Site
from ig_metrics.config.fieldkinds import Kind, Parsed, read_text
from ig_metrics.config.yamlnodes import describe_node, line_of, mapping_entries

BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
HASH_HELP = ("write the bcrypt hash of the password, not the password: e.g. "
             "htpasswd -nbBC 10 '' PASSWORD | tr -d ':\\n', or python3 -c \"import bcrypt, "
             "getpass; print(bcrypt.hashpw(getpass.getpass().encode(), "
             "bcrypt.gensalt()).decode())\"")


class BcryptUsersKind(Kind):
    """User name -> bcrypt hash. Hashes count as secrets: never shown."""

    expected = "a mapping of user names to bcrypt password hashes"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        if not isinstance(node, yaml.MappingNode):
            ctx.error(line_of(node), f"{site}: expected {self.expected}, got {describe_node(node)}")
            return None
        errors_before = ctx.error_count
        users = []
        for user, entry in mapping_entries(node, ctx.error).items():
            child = site.child(user)
            ctx.secrets.add(child.key)
            if ":" in user:
                ctx.error(entry.line, f"{child}: a user name cannot hold ':'")
                continue
            text = read_text(entry.value, child, ctx, "a bcrypt hash")
            if text is None:
                continue
            if not BCRYPT_HASH.match(text.text):
                # Never quote it: it may be a password written in clear.
                ctx.error(text.line, f"{child}: not a bcrypt hash (the value is not shown); "
                                     f"{HASH_HELP}")
                continue
            users.append((user, text.text))
        if ctx.error_count > errors_before:
            return None
        if not users:
            ctx.error(line_of(node), f"{site}: names no user; remove it or add "
                                     "user: <bcrypt hash>")
            return None
        return Parsed(tuple(users))

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "minProperties": 1,
                "additionalProperties": {"type": "string", "pattern": BCRYPT_HASH.pattern}}
