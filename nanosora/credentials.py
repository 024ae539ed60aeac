"""C2PA Content Credentials: the standard manifest that Sora, cameras and editing tools attach
and that browsers' and platforms' verifiers read, embedded in every file nanosora generates
(mp4, gif and png; a folder of PNG frames is not signed) and read back by `nanosora verify`.

The manifest says what made the file (the `c2pa.created` action with the IPTC source type
`trainedAlgorithmicMedia`, nanosora's version, the model) and the generation's prompt and seed,
and is signed with the C2PA reference library (c2pa-python):

- with the user's own certificate chain and private key, when NANOSORA_C2PA_CERT and
  NANOSORA_C2PA_KEY name their PEM files (a certificate a trust list knows makes the file
  "Trusted" in every verifier);
- otherwise with a local chain (a root and a signing certificate) made on first use in the
  user's config folder, never in the repository. Verifiers report its signature as valid and
  its signer as untrusted, which is the truth: nobody vouches for a key made on this machine.

Our own sealed manifest and the watermark (provenance.py) stay: they still speak for a file
whose C2PA manifest was stripped, as re-encoding does.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from nanosora import __version__
from nanosora.atomic import atomic_path

# the IPTC digital source type of media a trained model made from a prompt
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
SIGNED_EXTS = (".mp4", ".gif", ".png")
GENERATION_LABEL = "org.nanosora.generation"  # our assertion: what the request asked for
CERT_ENV, KEY_ENV = "NANOSORA_C2PA_CERT", "NANOSORA_C2PA_KEY"


def config_dir() -> Path:
    """The user's nanosora config folder: $NANOSORA_CONFIG_DIR, else $XDG_CONFIG_HOME/nanosora,
    else ~/.config/nanosora."""
    if os.environ.get("NANOSORA_CONFIG_DIR"):
        return Path(os.environ["NANOSORA_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "nanosora"


@dataclass(frozen=True)
class Identity:
    """Who signs: a PEM certificate chain (signing certificate first) and its private key."""

    chain: str
    key: str
    local: bool  # made on this machine (untrusted by design)


def _name(common: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nanosora (local, untrusted)"),
        ]
    )


def _usage(sign: bool):
    from cryptography import x509

    flags = dict.fromkeys(
        ["content_commitment", "key_encipherment", "data_encipherment", "key_agreement"], False
    )
    return x509.KeyUsage(
        digital_signature=sign, key_cert_sign=not sign, crl_sign=not sign,
        encipher_only=False, decipher_only=False, **flags,
    )  # fmt: skip


def make_local_chain() -> tuple[str, str]:
    """A fresh root and a signing certificate under it (P-256, ten years), as C2PA requires of
    a signer: the signing certificate is not a CA, signs digitally and names an extended key
    usage (email protection, the one the C2PA trust model accepts for ordinary signers).
    Returns (chain PEM, signing key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.UTC)
    span = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=3650))

    def cert(subject, issuer, public, signer, ca: bool, issuer_public):
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(span[0])
            .not_valid_after(span[1])
            .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
            .add_extension(_usage(sign=not ca), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False)
        )
        if not ca:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        return b.sign(signer, hashes.SHA256())

    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root_name = _name("nanosora local root")
    root = cert(root_name, root_name, root_key.public_key(), root_key, True, root_key.public_key())
    leaf_name = _name("nanosora local signer")
    leaf = cert(leaf_name, root_name, key.public_key(), root_key, False, root_key.public_key())
    pem = serialization.Encoding.PEM
    chain = leaf.public_bytes(pem).decode() + root.public_bytes(pem).decode()
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return chain, key_pem


def identity() -> Identity:
    """The user's own chain and key (NANOSORA_C2PA_CERT, NANOSORA_C2PA_KEY), else the local
    chain in the config folder, made there on first use."""
    cert, key = os.environ.get(CERT_ENV), os.environ.get(KEY_ENV)
    if bool(cert) != bool(key):
        raise ValueError(
            f"set both {CERT_ENV} and {KEY_ENV} (PEM files) to sign with your own certificate, or neither"
        )
    if cert and key:
        for what, p in ((CERT_ENV, cert), (KEY_ENV, key)):
            if not Path(p).is_file():
                raise ValueError(
                    f"{what}={p}: no such file (a PEM certificate chain or private key is accepted)"
                )
        return Identity(Path(cert).read_text(), Path(key).read_text(), local=False)
    folder = config_dir() / "c2pa"
    chain_path, key_path = folder / "local-chain.pem", folder / "local-key.pem"
    if not (chain_path.is_file() and key_path.is_file()):
        folder.mkdir(parents=True, exist_ok=True)
        chain, key_pem = make_local_chain()
        # the key first, private from its first byte; the chain's presence marks a whole pair
        with atomic_path(key_path) as tmp:
            tmp.write_text(key_pem)
        os.chmod(key_path, 0o600)
        with atomic_path(chain_path) as tmp:
            tmp.write_text(chain)
    return Identity(chain_path.read_text(), key_path.read_text(), local=True)


def manifest(metadata: dict, title: str) -> dict:
    """The C2PA manifest of a generated file, from its nanosora metadata."""
    generation = {k: metadata[k] for k in ("prompt", "mode", "model", "seed", "caption") if k in metadata}
    return {
        "claim_generator_info": [{"name": "nanosora", "version": __version__}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            "softwareAgent": {"name": "nanosora", "version": __version__},
                        }
                    ]
                },
            },
            {"label": GENERATION_LABEL, "data": generation},
        ],
    }


def _signer(who: Identity):
    import c2pa

    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, who.chain.encode(), who.key.encode(), None)
    return c2pa.Signer.from_info(info)


def sign(path: str | os.PathLike, metadata: dict, who: Identity | None = None) -> Path:
    """Embed a signed C2PA manifest in the file at `path` (mp4, gif or png), in place and
    atomically: the signed copy replaces the file only once it is whole."""
    import c2pa

    path = Path(path)
    if path.suffix.lower() not in SIGNED_EXTS:
        raise ValueError(f"{path}: Content Credentials are written for {', '.join(SIGNED_EXTS)} files")
    who = who or identity()
    try:
        signer = _signer(who)
    except c2pa.C2paError as e:
        raise ValueError(f"the C2PA signing certificate or key was refused: {e}") from e
    with atomic_path(path) as tmp:
        c2pa.Builder(manifest(metadata, path.name)).sign_file(path, tmp, signer)
    return path


@dataclass(frozen=True)
class Credentials:
    """What a C2PA reader found in a file."""

    state: str  # "Valid", "Trusted" or "Invalid" (the C2PA validation states)
    generator: str  # the claim generator's name and version
    created: bool  # the c2pa.created action with the trainedAlgorithmicMedia source type
    generation: dict  # our assertion (prompt, model, seed), as signed
    failures: list[str]  # validation codes that failed, e.g. signingCredential.untrusted

    @property
    def untouched(self) -> bool:
        """Signed and unchanged since: every failure, if any, is only the signer's trust."""
        return self.state in ("Valid", "Trusted") and not [
            f for f in self.failures if f != "signingCredential.untrusted"
        ]

    def to_dict(self) -> dict:
        return {
            "state": self.state,
            "generator": self.generator,
            "created_by_ai": self.created,
            "untrusted_signer": "signingCredential.untrusted" in self.failures,
            "failures": self.failures,
            "generation": self.generation,
        }


def read(path: str | os.PathLike) -> Credentials | None:
    """The file's Content Credentials read with c2pa-python, or None when it carries none."""
    import c2pa

    path = Path(path)
    if path.suffix.lower() not in SIGNED_EXTS:
        return None
    try:
        reader = c2pa.Reader.try_create(path)
    except c2pa.C2paError:  # a manifest so damaged it cannot be parsed
        return Credentials("Invalid", "", False, {}, ["manifest.unreadable"])
    if reader is None:
        return None
    with reader:
        active = reader.get_active_manifest() or {}
        results = (reader.get_validation_results() or {}).get("activeManifest", {})
        state = reader.get_validation_state() or "Invalid"
    info = (active.get("claim_generator_info") or [{}])[0]
    assertions = {a.get("label", ""): a.get("data", {}) for a in active.get("assertions", [])}
    actions = next((v.get("actions", []) for k, v in assertions.items() if k.startswith("c2pa.actions")), [])
    created = any(
        a.get("action") == "c2pa.created" and a.get("digitalSourceType") == TRAINED_ALGORITHMIC_MEDIA
        for a in actions
    )
    failures = [f.get("code", "") for f in results.get("failure", [])]
    generator = " ".join(str(info.get(k, "")) for k in ("name", "version")).strip()
    return Credentials(state, generator, created, assertions.get(GENERATION_LABEL, {}), failures)


def summary(c: Credentials | None) -> str:
    """One line for `nanosora verify`."""
    if c is None:
        return "none (stripped, re-encoded, or never signed)"
    who = "an untrusted local signer" if "signingCredential.untrusted" in c.failures else "a trusted signer"
    if c.untouched:
        return f"{c.state}: signed by {who}, unchanged since ({c.generator})"
    return f"{c.state}: the file changed after signing ({', '.join(c.failures)})"
