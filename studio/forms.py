"""The gallery's filter form: validates the query string before it reaches `filter_generations`."""
from __future__ import annotations

from typing import Any

from django import forms

from .models import Status


class GalleryFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Prompt contains",
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Search prompts"}))
    model = forms.ChoiceField(required=False, label="Model")
    lora = forms.ChoiceField(required=False, label="LoRA")
    status = forms.ChoiceField(required=False, label="Status",
                               choices=[("", "Any status"), *Status.choices])
    created_after = forms.DateField(required=False, label="From",
                                    widget=forms.DateInput(attrs={"type": "date"}))
    created_before = forms.DateField(required=False, label="To",
                                     widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, models: list[tuple[str, str]], loras: list[tuple[str, str]],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "Any model"), *models]
        self.fields["lora"].choices = [("", "Any LoRA"), *loras]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        after, before = cleaned.get("created_after"), cleaned.get("created_before")
        if after and before and after > before:
            self.add_error("created_before", "The end date is before the start date.")
        return cleaned

    def selector_params(self) -> dict[str, str]:
        """The valid filters in the vocabulary of `selectors.filter_generations` (invalid ones dropped)."""
        if not self.is_bound:
            return {}
        self.is_valid()
        params: dict[str, str] = {}
        for name, value in self.cleaned_data.items():
            if value in (None, ""):
                continue
            params[name] = value.isoformat() if hasattr(value, "isoformat") else str(value)
        return params

    @property
    def active_count(self) -> int:
        return len(self.selector_params())
