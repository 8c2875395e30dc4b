"""Register a user and start a stream on a fresh onair; print shell assignments for the run."""

import secrets
import sys

import requests

api = sys.argv[1].rstrip("/")
name = "contract_" + secrets.token_hex(4)
res = requests.post(
    f"{api}/api/users/register",
    json={"username": name, "email": f"{name}@example.com", "password": secrets.token_urlsafe(16)},
    timeout=10,
)
res.raise_for_status()
session = res.json()
token, user = session["access_token"], session["user"]["id"]
categories = requests.get(f"{api}/api/categories", timeout=10).json()
category = categories[0]["slug"] if categories and isinstance(categories[0], dict) else "just-chatting"
res = requests.post(
    f"{api}/api/streams/start",
    json={"title": "schemathesis", "category": category},
    headers={"Authorization": f"Bearer {token}"},
    timeout=30,
)
res.raise_for_status()
stream = res.json()["stream"]["id"]
print(f"ONAIR_CONTRACT_TOKEN={token}")
print(f"ONAIR_CONTRACT_CHANNEL={user}")
print(f"ONAIR_CONTRACT_STREAM={stream}")
