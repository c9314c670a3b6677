"""The OpenAI-compatible generator, against a local stub server: no LLM runs here, and a paid API
is exactly what may be mocked. The stub is a real HTTP server, so the client, the prompt and the
citation check are all exercised as they would be against a real endpoint."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.audit.models import AuditRecord, Outcome


class ChatStub:
    def __init__(self):
        self.requests: list[dict] = []
        self.replies: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                content = stub.replies.pop(0) if stub.replies else "NO_ANSWER"
                payload = json.dumps(
                    {
                        "id": "chatcmpl-stub",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def chat(settings):
    stub = ChatStub()
    settings.ANSWERS = {
        **settings.ANSWERS,
        "GENERATOR": "openai",
        "LLM_BASE_URL": stub.url,
        "LLM_MODEL": "stub-model",
        "LLM_API_KEY": "sk-test-from-env",
    }
    yield stub
    stub.server.shutdown()


def ask(library, **body):
    response = library.client(library.alice).post(
        "/api/v1/ask", {"query": "How long must a password be?", **body}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
def test_answer_with_valid_citations(library, chat):
    chat.replies = ["Passwords need at least fourteen characters [1]."]
    body = ask(library)
    assert body["grounded"] and body["generator"] == "openai-chat" and body["model"] == "stub-model"
    assert body["answer"] == "Passwords need at least fourteen characters [1]."
    citation = body["citations"][0]
    assert citation["marker"] == 1 and citation["document_id"] == library.security.pk
    sent = chat.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-test-from-env"
    system, user = sent["body"]["messages"]
    assert "cite" in system["content"] and "NO_ANSWER" in system["content"]
    assert "[1] Security policy" in user["content"] and "fourteen characters" in user["content"]
    assert "Salary" not in user["content"]  # only what alice may read goes to the model
    record = AuditRecord.objects.across_tenants().get(pk=body["audit_id"])
    assert (
        record.generator == "openai-chat"
        and record.generator_model == "stub-model"
        and record.outcome == Outcome.ANSWERED
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "reply, reason",
    [
        ("Passwords need fourteen characters [7].", "not in its context: [7]"),
        ("Passwords need fourteen characters.", "cites no passage"),
        ("NO_ANSWER", "found no answer"),
    ],
)
def test_a_reply_citing_outside_its_context_or_nothing_is_refused(library, chat, reply, reason):
    chat.replies = [reply]
    body = ask(library)
    assert body["grounded"] is False and body["citations"] == [] and reason in body["refusal_reason"]
    assert AuditRecord.objects.across_tenants().get(pk=body["audit_id"]).outcome == Outcome.REFUSED


@pytest.mark.django_db
def test_hyde_embeds_a_hypothetical_answer_for_dense_retrieval(library, chat):
    chat.replies = [
        "Company rules say a password has a minimum length of fourteen characters.",
        "Fourteen characters [1].",
    ]
    body = ask(library, hyde=True)
    assert body["grounded"] and len(chat.requests) == 2
    assert chat.requests[0]["body"]["messages"][1]["content"] == "How long must a password be?"
    assert body["timings"]["expand"] > 0
    assert AuditRecord.objects.across_tenants().get(pk=body["audit_id"]).parameters["hyde"] is True


@pytest.mark.django_db
def test_an_unreachable_model_is_a_503_and_audited(library, settings):
    settings.ANSWERS = {
        **settings.ANSWERS,
        "GENERATOR": "openai",
        "LLM_BASE_URL": "http://127.0.0.1:1/v1",
        "LLM_MODEL": "m",
        "LLM_TIMEOUT": 2,
    }
    response = library.client(library.alice).post("/api/v1/ask", {"query": "passwords"}, format="json")
    assert response.status_code == 503 and response.json()["code"] == "generator_unavailable"
    record = AuditRecord.objects.across_tenants().order_by("-pk").first()
    assert record.outcome == Outcome.FAILED and "generator_unavailable" in record.error
