"""CurveZMQ encryption and key-based authentication (RFC 26 and 27), off by default.

The master has a key pair, and so has each worker and client. With keys, every
connection is encrypted, the master admits only the public keys in its --worker-keys
and --client-keys directories (a ZAP handler, pyzmq's ThreadAuthenticator), and it
checks on every message that the key sends only in the role it was admitted for: a
client's key cannot register as a worker and receive tasks. Keys are ZeroMQ
certificate files, made by `zq keys NAME` (pyzmq's zmq.auth.create_certificates):
NAME.key holds the public key (hand it out), NAME.key_secret both (keep it private).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import zmq
import zmq.auth

from zq.core.messages import Role
from zq.errors import ConfigError

log = logging.getLogger(__name__)

ZAP_DOMAIN = "zq"


@dataclass(frozen=True)
class PeerKeys:
    """What a worker or client needs: its own key pair and the master's public key."""

    public: bytes
    secret: bytes
    master: bytes


@dataclass(frozen=True)
class MasterKeys:
    """The master's key pair and the public keys (z85 text) admitted per role."""

    public: bytes
    secret: bytes
    admitted: dict[Role, frozenset[str]]

    @cached_property
    def known(self) -> frozenset[str]:
        """Every key admitted in some role: what the ZAP handler (zq.gate) lets in."""
        return frozenset().union(*self.admitted.values())


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


def load_master_keys(secret_key: str | None, worker_keys: str | None,
                     client_keys: str | None) -> MasterKeys | None:
    """The master's keys and the admitted ones; None when no key option is given."""
    if not (secret_key or worker_keys or client_keys):
        return None
    if not (secret_key and worker_keys and client_keys):
        raise ConfigError("with keys the master needs all of --secret-key (its "
                          "NAME.key_secret), --worker-keys DIR and --client-keys DIR "
                          "(directories of the public NAME.key files it admits)")
    public, secret = _load(secret_key, need_secret=True)
    admitted = {Role.WORKER: _admitted(worker_keys, "--worker-keys"),
                Role.CLIENT: _admitted(client_keys, "--client-keys")}
    return MasterKeys(public, secret, admitted)  # type: ignore[arg-type]


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
                          "`zq keys NAME`") from e
    if need_secret and not secret:
        raise ConfigError(f"{path} holds no secret key: give the NAME.key_secret file")
    return public, secret


def _admitted(directory: str, option: str) -> frozenset[str]:
    if not Path(directory).is_dir():
        raise ConfigError(f"{option} {directory} is not a directory of NAME.key files")
    keys = frozenset(k.decode("ascii") for k in zmq.auth.load_certificates(directory))
    if not keys:
        log.warning("%s %s holds no public keys: no peer of that role can connect",
                    option, directory)
    return keys
