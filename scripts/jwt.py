#!/usr/bin/env python3
"""Mints a development JWT for the local app (HS256, the local `supabase_jwt_secret`).

    make jwt                          # an authenticated student
    make jwt APP_ROLE=teacher         # a teacher (app_metadata.role)
    make jwt ROLE=anon                # the anon key's JWT
    make jwt ROLE=service_role        # the service role

For a user token it also makes sure the user exists in the local `auth.users`, since
the tables reference it. Standard library only; never use these tokens outside a
local run.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV_FILE = os.path.join(ROOT, ".local", "dev.env")
DEV_USERS = {
    None: "00000000-0000-4000-8000-000000000001",
    "teacher": "00000000-0000-4000-8000-000000000002",
    "admin": "00000000-0000-4000-8000-000000000003",
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_env() -> dict:
    values = {}
    if os.path.exists(ENV_FILE):
        with open(ENV_FILE) as handle:
            for line in handle:
                if "=" in line and not line.startswith("#"):
                    key, value = line.rstrip("\n").split("=", 1)
                    values[key] = value.strip("'\"")
    return values


def mint(secret: str, claims: dict) -> str:
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + b64url(
        json.dumps(claims, separators=(",", ":")).encode()
    )
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def ensure_user(db_url: str, user_id: str, app_role):
    meta = json.dumps({"role": app_role} if app_role else {})
    sql = (
        "INSERT INTO auth.users (id, email, raw_app_meta_data) "
        f"VALUES ('{user_id}', 'dev+{user_id[-4:]}@voice-edge.local', '{meta}'::jsonb) "
        "ON CONFLICT (id) DO NOTHING"
    )
    subprocess.run(["psql", "-q", "-X", db_url, "-c", sql], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", default="authenticated",
                        choices=["anon", "authenticated", "service_role"])
    parser.add_argument("--sub", help="the user id (default: a fixed development user)")
    parser.add_argument("--app-role", choices=["teacher", "admin"])
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until expiry")
    parser.add_argument("--secret", help="default: SUPABASE_JWT_SECRET from .local/dev.env")
    args = parser.parse_args()

    env = load_env()
    secret = args.secret or env.get("SUPABASE_JWT_SECRET") or os.environ.get("SPIN_VARIABLE_SUPABASE_JWT_SECRET")
    if not secret:
        print("no secret: run `make up` first (it writes .local/dev.env) or pass --secret", file=sys.stderr)
        return 2

    now = int(time.time())
    claims = {"iss": "supabase", "role": args.role, "iat": now, "exp": now + args.ttl}
    if args.role == "authenticated":
        sub = args.sub or DEV_USERS[args.app_role]
        uuid.UUID(sub)
        claims.update({
            "sub": sub,
            "aud": "authenticated",
            "email": f"dev+{sub[-4:]}@voice-edge.local",
            "session_id": str(uuid.uuid4()),
            "is_anonymous": False,
            "app_metadata": {"provider": "email", **({"role": args.app_role} if args.app_role else {})},
            "user_metadata": {},
        })
        if env.get("DB_URL"):
            ensure_user(env["DB_URL"], sub, args.app_role)
    print(mint(secret, claims))
    return 0


if __name__ == "__main__":
    sys.exit(main())
