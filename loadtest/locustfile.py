"""Tenant apps searching and asking, as several people of the demo tenant (each with their own
access), against a running server. Driven by loadtest/run.py; by hand:

    KP_LOAD_KEY=<acme demo key> locust -f loadtest/locustfile.py --host http://127.0.0.1:8765
"""

from __future__ import annotations

import os
import random

from locust import HttpUser, between, task

PEOPLE = os.environ.get("KP_LOAD_PEOPLE", "hannah.hr,sam.support,olivia.owner,eddie.editor").split(",")
QUESTIONS = [
    "How many weeks of parental leave do parents get?",
    "What do I do in a security incident?",
    "How are hotel costs reimbursed?",
    "What are the API rate limits of Acme Cloud?",
    "Can I work remotely from another country?",
    "How do I reset the Widget 3000?",
    "Who approves business class flights?",
    "incident response severity levels",
]


class TenantApp(HttpUser):
    wait_time = between(0.05, 0.2)

    def on_start(self):
        self.client.headers["Authorization"] = f"Api-Key {os.environ['KP_LOAD_KEY']}"

    def _post(self, path: str, body: dict):
        # Anything but 200 is an error, 429 included: the run sets rate limits above its load.
        with self.client.post(path, json=body, name=path, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
            elif "audit_id" not in response.json():
                response.failure("no audit_id in the response")

    @task(3)
    def search(self):
        self._post(
            "/api/v1/search",
            {
                "query": random.choice(QUESTIONS),
                "as_user": random.choice(PEOPLE),
                "mode": random.choice(["hybrid", "bm25", "dense"]),
                "k": 10,
            },
        )

    @task(1)
    def ask(self):
        self._post("/api/v1/ask", {"query": random.choice(QUESTIONS), "as_user": random.choice(PEOPLE)})
