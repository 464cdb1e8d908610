#!/usr/bin/env python3
"""Write the request files of bench/run.sh and check each request once.

    prepare.py BASE_URL WORK_DIR

Reads from WORK_DIR: `accounts` (lines `admin EMAIL PASSWORD`, `plain EMAIL
PASSWORD`, `seed - PASSWORD`), `ids` (user ids for `user(id:)`), `emails`
(seeded emails for `login`) and `deep` (`EMAIL|ID|NEXT_EMAIL`: the row the
deep page starts after, by email, and the row after it). Logs in as the
admin and the plain user, builds the deep page's cursor from a cursor the
server issued (only the email and id changed), sends every kind of request
once (200, no `errors`, the expected answer, else exit 1), and writes
WORK_DIR/<scenario>.req for requests.lua (METHOD, PATH, TOKEN, BODY, tab
separated) and WORK_DIR/prepared (facts for the results).
"""

import base64
import json
import random
import sys
import urllib.error
import urllib.request

ME = "query Me { me { id email displayName roles { name } } }"
USER = (
    "query User($id: ID!) { user(id: $id) "
    "{ id email displayName status createdAt roles { name permissions } } }"
)
USERS = "query Users { users(first: 50) { nodes { id email roles { name } } } }"
BY_EMAIL = "orderBy: {field: EMAIL, direction: ASC}"
USERS_EMAIL = f"query UsersByEmail {{ users(first: 50, {BY_EMAIL}) {{ nodes {{ id email roles {{ name }} }} }} }}"
USERS_DEEP = (
    f"query UsersByEmailAfter($after: String!) {{ users(first: 50, after: $after, {BY_EMAIL}) "
    "{ nodes { id email roles { name } } } }"
)
FIRST_CURSOR = f"query FirstCursor {{ users(first: 1, {BY_EMAIL}) {{ nodes {{ id email }} pageInfo {{ endCursor }} }} }}"
LOGIN = (
    "mutation Login($email: String!, $password: String!) "
    "{ login(input: {email: $email, password: $password}) { accessToken } }"
)
REGISTER = (
    "mutation Register($email: String!, $password: String!) "
    "{ register(input: {email: $email, password: $password}) { accessToken } }"
)
# Shares nothing with the registered emails' local parts (bench-…).
REGISTER_PASSWORD = "Lo4d-harness-passphrase-xq"
# The mix, per 1,000 requests: 90 % me/user, 9 % lists, 1 % login.
MIX = {"me": 450, "user": 450, "users": 50, "users_email": 20, "users_deep": 20, "login": 10}


def fail(message):
    sys.exit(f"prepare: {message}")


def body(query, variables=None):
    return json.dumps({"query": query, "variables": variables or {}}, separators=(",", ":"))


def post(base, text, token=None):
    request = urllib.request.Request(
        base + "/graphql", data=text.encode(), method="POST", headers={"content-type": "application/json"}
    )
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    if status != 200 or b'"errors"' in raw:
        fail(f"HTTP {status} for {text[:120]}: {raw[:600].decode(errors='replace')}")
    return json.loads(raw)["data"]


def b64decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64encode(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def line(method, path, token, text):
    return f"{method}\t{path}\t{token or '-'}\t{text}"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    base, work = sys.argv[1].rstrip("/"), sys.argv[2]
    accounts = {}
    with open(f"{work}/accounts", encoding="utf-8") as f:
        for row in f:
            kind, email, password = row.split()
            accounts[kind] = (email, password)
    ids = [x.strip() for x in open(f"{work}/ids", encoding="utf-8") if x.strip()]
    emails = [x.strip() for x in open(f"{work}/emails", encoding="utf-8") if x.strip()]
    deep_email, deep_id, next_email = open(f"{work}/deep", encoding="utf-8").read().strip().split("|")
    if not ids or not emails:
        fail("no user ids or emails to use")

    def login(email, password):
        return post(base, body(LOGIN, {"email": email, "password": password}))["login"]["accessToken"]

    admin = login(*accounts["admin"])
    plain_email, plain_password = accounts["plain"]
    plain = login(plain_email, plain_password)
    seed_password = accounts["seed"][1]

    # The deep cursor: one the server issued, with the email and id of the
    # row to continue after.
    first = post(base, body(FIRST_CURSOR), admin)["users"]
    issued = json.loads(b64decode(first["pageInfo"]["endCursor"]))
    node = first["nodes"][0]
    if not (isinstance(issued, dict) and issued.get("v") == {"s": node["email"]} and issued.get("i") == node["id"]):
        fail(f"the server's cursor is not the expected JSON: {issued!r}")
    issued["v"] = {"s": deep_email}
    issued["i"] = deep_id
    cursor = b64encode(json.dumps(issued, separators=(",", ":")).encode())

    requests = {
        "me": [line("POST", "/graphql", plain, body(ME))],
        "user": [line("POST", "/graphql", admin, body(USER, {"id": i})) for i in ids],
        "users": [line("POST", "/graphql", admin, body(USERS))],
        "users_email": [line("POST", "/graphql", admin, body(USERS_EMAIL))],
        "users_deep": [line("POST", "/graphql", admin, body(USERS_DEEP, {"after": cursor}))],
        "login": [
            line("POST", "/graphql", None, body(LOGIN, {"email": e, "password": seed_password})) for e in emails
        ],
        "register": [
            line(
                "POST",
                "/graphql",
                None,
                body(REGISTER, {"email": "bench-__UNIQUE__@example.com", "password": REGISTER_PASSWORD}),
            )
        ],
        "health": [line("GET", "/health", None, "")],
    }

    # One checked request of each kind.
    me = post(base, body(ME), plain)["me"]
    if not me or me["email"] != plain_email:
        fail(f"me answered {me!r}")
    for i in ids[:3]:
        if post(base, body(USER, {"id": i}), admin)["user"] is None:
            fail(f"user(id: {i}) is null")
    for name, text in (("users", USERS), ("users_email", USERS_EMAIL)):
        nodes = post(base, body(text), admin)["users"]["nodes"]
        if len(nodes) != 50:
            fail(f"{name} answered {len(nodes)} users, not 50")
    deep = post(base, body(USERS_DEEP, {"after": cursor}), admin)["users"]["nodes"]
    if len(deep) != 50 or deep[0]["email"] != next_email:
        fail(f"the deep page answered {len(deep)} users from {deep[0]['email'] if deep else None}, not 50 from {next_email}")
    login(emails[0], seed_password)
    post(base, body(REGISTER, {"email": "bench-check@example.com", "password": REGISTER_PASSWORD}))

    shuffle = random.Random(20261201)
    mix = []
    for name, count in MIX.items():
        pool = requests[name]
        start = shuffle.randrange(len(pool))
        mix += [pool[(start + k) % len(pool)] for k in range(count)]
    shuffle.shuffle(mix)
    requests["mix"] = mix

    for name, lines in requests.items():
        with open(f"{work}/{name}.req", "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    with open(f"{work}/prepared", "w", encoding="utf-8") as f:
        f.write(f"cursor\t{cursor}\n")
        f.write(f"deep_first\t{next_email}\n")
        f.write(f"ids\t{len(ids)}\n")
        f.write(f"emails\t{len(emails)}\n")
    print(f"prepare: tokens, {len(ids)} ids, {len(emails)} login emails; the deep page starts at {next_email}")


if __name__ == "__main__":
    main()
