"""Ask a question as a member of a tenant, from the command line: the same pipeline, access checks
and audit record as the API.

    python manage.py ask --tenant acme --as hannah.hr "How long is parental leave?"
"""

from django.core.management.base import BaseCommand, CommandError

from apps.answers.services import ask_run
from apps.answers.types import RetrievalRequest
from apps.core.exceptions import ApplicationError
from apps.tenants import resolution
from apps.tenants.models import Membership, Scope


class Command(BaseCommand):
    help = "Ask a question as a tenant member; prints the answer, its citations and the audit id."

    def add_arguments(self, parser):
        parser.add_argument("question")
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--as", dest="username", required=True, help="A tenant username.")
        parser.add_argument("-k", type=int, default=5)

    def handle(self, *args, question: str, tenant: str, username: str, k: int, **options):
        membership = (
            Membership.objects.select_related("tenant", "user").filter(tenant__slug=tenant, username=username).first()
        )
        if membership is None:
            raise CommandError(f"No member '{username}' in tenant '{tenant}'.")
        try:
            # The member asks as themselves: active, in an active tenant, with a role that may ask.
            context = resolution.act_for(resolution.member_context(membership), require=(Scope.ASK,))
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        outcome = ask_run(context=context, request=RetrievalRequest(query=question, k=k))
        answer = outcome.run.generated_answer()
        self.stdout.write(f"{tenant}/{username} asks: {question}")
        self.stdout.write(f"  {answer.text}")
        for citation in answer.citations:
            title = next(p.title for p in outcome.run.passages if p.version_id == citation.version_id)
            self.stdout.write(
                f"    [{citation.marker}] {title}, version {citation.version_id}, "
                f"characters {citation.start_offset}-{citation.end_offset}"
            )
        self.stdout.write(f"  (audit record {outcome.record.pk}, {sum(outcome.run.timings.values()):.0f} ms)")
