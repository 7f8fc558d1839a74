from __future__ import annotations

from django import forms

from .models import Role, Scope


class WorkspaceForm(forms.Form):
    name = forms.CharField(max_length=100, label="Workspace name")


class InvitationForm(forms.Form):
    email = forms.EmailField(label="Email address")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, initial="API key", label="Name")
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices, widget=forms.CheckboxSelectMultiple, initial=[Scope.READ, Scope.GENERATE],
        help_text=(
            "read: list and fetch · generate: create images · train: fine-tune LoRAs · admin: manage keys and members"
        ),
    )
