"""Operator command: make (or reuse) a user and workspace and print a new key on the last line."""
from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from accounts.models import Membership, Role, Scope, User, Workspace
from accounts.services import api_key_create, workspace_create


class Command(BaseCommand):
    help = "Create an API key for EMAIL in workspace NAME (both created when missing). The key is the last line."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--workspace", required=True, help="Workspace name")
        parser.add_argument("--scopes", nargs="+", default=[Scope.READ, Scope.GENERATE, Scope.TRAIN],
                            choices=Scope.values)
        parser.add_argument("--name", default="CLI key")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        email = options["email"].strip().lower()
        try:
            validate_email(email)
        except Exception as exc:
            raise CommandError(f"'{email}' is not a valid email address.") from exc
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(email, None)
            self.stderr.write(f"Created user {email} (no password; use password reset to sign in).")
        workspace = Workspace.objects.filter(name=options["workspace"], memberships__user=user).first()
        if workspace is None:
            workspace = workspace_create(name=options["workspace"], owner=user)
            self.stderr.write(f"Created workspace {workspace.name} ({workspace.pk}).")
        membership = Membership.objects.get(workspace=workspace, user=user)
        if membership.role not in (Role.OWNER, Role.ADMIN) and Scope.ADMIN in options["scopes"]:
            raise CommandError(f"{email} is {membership.role} in {workspace.name}; it cannot hold the admin scope.")
        try:
            created = api_key_create(workspace=workspace, created_by=user, name=options["name"],
                                     scopes=options["scopes"], allowed_scopes=membership.scopes)
        except (PermissionDenied, ValidationError) as exc:
            message = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            raise CommandError(f"{email} is {membership.role} in {workspace.name}: {message}") from exc
        self.stdout.write(f"Scopes: {', '.join(created.api_key.scopes)}")
        self.stdout.write(created.secret)
