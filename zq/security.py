"""CurveZMQ encryption and key-based authentication (RFC 26 and 27), off by default.

The master has a key pair, and so has each worker, client and admin. With keys every
connection is encrypted, the master admits only the public keys in its key folders
(the ZAP handler, zq.gate) and checks per message that a key acts only in its role: a
worker key only works; a client key only sends client messages; an admin key is a
client that may also do the admin actions (zq.core.access). Keys are ZeroMQ
certificate files (pyzmq's zmq.auth): NAME.key holds the public key (hand it out),
NAME.key_secret both (keep it private, mode 0600).

One folder holds a whole setup (`zq keys init DIR`, `zq keys add ROLE NAME --dir DIR`),
read by `--keys DIR` on every side:

    DIR/master.key, DIR/master.key_secret    the master's pair (the secret stays on it)
    DIR/workers/NAME.key                     public keys the master admits as workers,
    DIR/clients/NAME.key                     ... as clients,
    DIR/admins/NAME.key                      ... as admins
    DIR/private/workers/NAME.key_secret      each peer's own pair (likewise clients/,
                                             admins/): copy it, with master.key, to the
                                             host that uses it, in the same layout

A peer with --keys DIR uses DIR/master.key and its role's secret in DIR/private/: the
one there, or the one named after the role (what `init` made) when there are several.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import zmq
import zmq.auth

from zq.core.messages import Role
from zq.errors import ConfigError

log = logging.getLogger(__name__)

ZAP_DOMAIN = "zq"
ROLES = ("worker", "client", "admin")  # a key has exactly one
FOLDERS = {"worker": "workers", "client": "clients", "admin": "admins"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class PeerKeys:
    """What a worker or client needs: its own key pair and the master's public key."""

    public: bytes
    secret: bytes
    master: bytes


@dataclass(frozen=True)
class MasterKeys:
    """The master's key pair and the public keys (z85 text) it admits, per role, and the
    folders they were read from (read again on SIGHUP: reload())."""

    public: bytes
    secret: bytes
    workers: frozenset[str]
    clients: frozenset[str]
    admins: frozenset[str] = frozenset()
    folders: dict[str, str] = field(default_factory=dict)  # role -> folder, for reload
    in_keys_folder: bool = False  # from --keys DIR: a role's missing folder is empty

    @cached_property
    def admitted(self) -> dict[Role, frozenset[str]]:
        """Per wire role, the keys that may send its messages: an admin is a client."""
        return {Role.WORKER: self.workers, Role.CLIENT: self.clients | self.admins}

    @cached_property
    def known(self) -> frozenset[str]:
        """Every key admitted in some role: what the ZAP handler (zq.gate) lets in."""
        return self.workers | self.clients | self.admins

    def is_admin(self, key: str) -> bool:
        return key in self.admins

    def role_of(self, key: str) -> str | None:
        for role, keys in (("worker", self.workers), ("client", self.clients),
                           ("admin", self.admins)):
            if key in keys:
                return role
        return None

    def reload(self) -> MasterKeys:
        """The same master pair with the folders read again (ConfigError if one is
        unreadable or a key is in two of them: the caller keeps the old keys)."""
        return _master_keys(self.public, self.secret, self.folders, self.in_keys_folder)


def create_keys(directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """NAME.key (public) and NAME.key_secret (readable by its owner only) in directory."""
    folder = Path(directory)
    umask = os.umask(0o077)  # the secret file is never readable by others, not even briefly
    try:
        folder.mkdir(parents=True, exist_ok=True)
        public, secret = (Path(p) for p in zmq.auth.create_certificates(folder, name))
        public.chmod(0o644)  # public: hand it out
    except OSError as e:
        raise ConfigError(f"cannot write keys in {folder}: {e}") from e
    finally:
        os.umask(umask)
    return public, secret


def load_peer_keys(secret_key: str | None, master_key: str | None) -> PeerKeys | None:
    """The keys of a worker or client; None when neither file is given."""
    if not secret_key and not master_key:
        return None
    if not (secret_key and master_key):
        raise ConfigError("give both --secret-key (this side's NAME.key_secret) and "
                          "--master-key (the master's public NAME.key), or neither")
    public, secret = _load(secret_key, need_secret=True)
    master, _ = _load(master_key, need_secret=False)
    return PeerKeys(public, secret, master)  # type: ignore[arg-type]


def peer_keys(role: str, keys: str | None, secret_key: str | None, master_key: str | None,
              admin: bool = False) -> PeerKeys | None:
    """A worker's or client's keys: from a keys folder (--keys, ZQ_KEYS) or from the two
    files (--secret-key and --master-key); None without keys. admin: a client that
    prefers the folder's admin key."""
    if keys and (secret_key or master_key):
        raise ConfigError("give --keys DIR (ZQ_KEYS), or --secret-key and --master-key "
                          "(ZQ_SECRET_KEY, ZQ_MASTER_KEY), not both")
    if keys:
        return client_keys_folder(keys, admin) if role == "client" else load_keys_folder(keys, role)
    return load_peer_keys(secret_key, master_key)


def load_master_keys(secret_key: str | None, worker_keys: str | None,
                     client_keys: str | None, admin_keys: str | None = None,
                     keys: str | None = None) -> MasterKeys | None:
    """The master's keys and the admitted ones: from a keys folder (`keys`, see the
    module docstring) or from the separate options; None when none is given."""
    separate = secret_key or worker_keys or client_keys or admin_keys
    if keys and separate:
        raise ConfigError("give --keys DIR, or --secret-key with --worker-keys and "
                          "--client-keys (and --admin-keys), not both")
    if keys:
        root = _folder(keys)
        secret_key = str(root / "master.key_secret")
        folders = {role: str(root / FOLDERS[role]) for role in ROLES}
    elif separate:
        if not (secret_key and worker_keys and client_keys):
            raise ConfigError("with keys the master needs all of --secret-key (its "
                              "NAME.key_secret), --worker-keys DIR and --client-keys DIR "
                              "(directories of the public NAME.key files it admits), or "
                              "--keys DIR (zq keys init)")
        folders = {"worker": worker_keys, "client": client_keys}
        if admin_keys:
            folders["admin"] = admin_keys
    else:
        return None
    public, secret = _load(secret_key, need_secret=True)
    return _master_keys(public, secret, folders, bool(keys))  # type: ignore[arg-type]


def _master_keys(public: bytes, secret: bytes, folders: dict[str, str],
                 in_keys_folder: bool) -> MasterKeys:
    found = {role: frozenset() if role not in folders or (
                 in_keys_folder and not Path(folders[role]).exists())
             else _admitted(folders[role], role) for role in ROLES}
    for i, a in enumerate(ROLES):
        for b in ROLES[i + 1:]:
            both = found[a] & found[b]
            if both:
                raise ConfigError(f"a key has one role, but {sorted(both)[0]} is in both "
                                  f"the {a} keys ({folders[a]}) and the {b} keys "
                                  f"({folders[b]}): remove it from one")
    return MasterKeys(public, secret, found["worker"], found["client"], found["admin"],
                      dict(folders), in_keys_folder)


def load_keys_folder(keys: str, role: str) -> PeerKeys:
    """A peer's keys from a keys folder: the master's public key and this role's pair."""
    root = _folder(keys)
    master, _ = _load(str(root / "master.key"), need_secret=False)
    public, secret = _load(str(_secret_of(root, role)), need_secret=True)
    return PeerKeys(public, secret, master)  # type: ignore[arg-type]


def has_role(keys: str, role: str) -> bool:
    """Whether a keys folder holds a secret key of this role."""
    return any((Path(keys) / "private" / FOLDERS[role]).glob("*.key_secret"))


def client_keys_folder(keys: str, admin: bool) -> PeerKeys:
    """A client's keys from a keys folder: the client key, or with admin the admin key;
    the other when the folder has only that one (an admin may act as a client; a
    client key asking for an admin action is refused by the master, saying why)."""
    first, second = ("admin", "client") if admin else ("client", "admin")
    return load_keys_folder(keys, first if has_role(keys, first) or not has_role(keys, second)
                            else second)


def init_keys(directory: str | os.PathLike[str]) -> list[Path]:
    """A new keys folder: the master's pair, and one worker, client and admin pair (named
    after their role). Refuses a folder that already holds a master key."""
    root = Path(directory)
    if (root / "master.key_secret").exists():
        raise ConfigError(f"{root} already holds keys (master.key_secret): add peers with "
                          f"`zq keys add ROLE NAME --dir {root}`, or choose another folder")
    made = list(create_keys(root, "master"))
    for role in ROLES:
        made += add_key(root, role, role)
    return made


def add_key(directory: str | os.PathLike[str], role: str, name: str) -> tuple[Path, Path]:
    """One more key pair of a role in a keys folder: the public key where the master
    reads it (DIR/workers/NAME.key, ...), the secret in DIR/private/workers/. A running
    master admits it after SIGHUP."""
    if role not in ROLES:
        raise ConfigError(f"a key's role is one of {', '.join(ROLES)}, not {role!r}")
    if not _NAME.match(name):
        raise ConfigError(f"{name!r} is not a key name: letters, digits, '.', '_' and '-', "
                          "at most 100, not starting with '.' or '-'")
    root = Path(directory)
    for other in ROLES:
        if ((root / FOLDERS[other] / f"{name}.key").exists()
                or (root / "private" / FOLDERS[other] / f"{name}.key_secret").exists()):
            raise ConfigError(f"{root} already has a key named {name!r} (a {other} key): "
                              "choose another name")
    private = root / "private" / FOLDERS[role]
    public, secret = create_keys(private, name)
    shown = root / FOLDERS[role] / public.name
    try:
        shown.parent.mkdir(parents=True, exist_ok=True)
        os.replace(public, shown)
    except OSError as e:
        raise ConfigError(f"cannot write keys in {root}: {e}") from e
    return shown, secret


def _folder(keys: str) -> Path:
    root = Path(keys)
    if not root.is_dir():
        raise ConfigError(f"--keys {keys} is not a folder of keys: make one with "
                          f"`zq keys init {keys}`")
    return root


def _secret_of(root: Path, role: str) -> Path:
    private = root / "private" / FOLDERS[role]
    secrets = sorted(private.glob("*.key_secret"))
    if len(secrets) == 1:
        return secrets[0]
    if (private / f"{role}.key_secret").exists():
        return private / f"{role}.key_secret"
    if not secrets:
        raise ConfigError(f"{root} holds no {role} key ({private}/NAME.key_secret): make "
                          f"one with `zq keys add {role} NAME --dir {root}`")
    raise ConfigError(f"{private} holds several {role} keys "
                      f"({', '.join(p.stem for p in secrets)}): keep only this host's, or "
                      "give --secret-key FILE --master-key FILE")


def configure_master_socket(sock: zmq.Socket, keys: MasterKeys) -> None:
    """Before bind: a CURVE server (the ZAP handler, zq.gate, decides on every key)."""
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)


def configure_peer_socket(sock: zmq.Socket, keys: PeerKeys) -> None:
    """Before connect."""
    sock.setsockopt(zmq.CURVE_SERVERKEY, keys.master)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)


def _load(path: str, *, need_secret: bool) -> tuple[bytes, bytes | None]:
    if not zmq.has("curve"):
        raise ConfigError("keys need CurveZMQ, which this libzmq was built without: "
                          "install pyzmq's own wheels (pip install --force-reinstall pyzmq)")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the key file {path}: {e}. Make keys with "
                          "`zq keys init DIR`") from e
    if need_secret and not secret:
        raise ConfigError(f"{path} holds no secret key: give the NAME.key_secret file")
    return public, secret


def _admitted(directory: str, role: str) -> frozenset[str]:
    if not Path(directory).is_dir():
        raise ConfigError(f"the {role} keys {directory} is not a directory of NAME.key files")
    try:
        keys = frozenset(k.decode("ascii") for k in zmq.auth.load_certificates(directory))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the {role} keys in {directory}: {e}") from e
    return keys
