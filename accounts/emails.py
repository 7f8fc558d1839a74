from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.http import HttpRequest
from django.urls import reverse

from .models import Invitation
from .services import INVITATION_VALID_DAYS


def send_invitation(request: HttpRequest, invitation: Invitation) -> None:
    link = request.build_absolute_uri(reverse("invitation-accept", args=[invitation.token]))
    inviter = invitation.invited_by.email if invitation.invited_by else "A teammate"
    send_mail(
        subject=f"Join {invitation.workspace.name} on Kizy",
        message=(
            f"{inviter} invited you to the workspace '{invitation.workspace.name}' on Kizy as "
            f"{invitation.get_role_display()}.\n\nOpen this link to join (sign up with {invitation.email} "
            f"if you have no account yet):\n{link}\n\nThe link works for {INVITATION_VALID_DAYS} days.\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[invitation.email],
    )
