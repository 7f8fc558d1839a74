"""The curation tool: staff browse synced entries, approve, feature, hide, link intents and start syncs.

Built for long sessions: thumbnails and flags at a glance, flags editable in the list, filters for every
curation question ("unapproved SDXL LoRAs with an unknown family"), bulk actions, and a link to the
source page on every row. Writes go through services, like everywhere else.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from .families import Rating
from .models import BaseModel, CatalogEntry, Download, Intent, LoraAdapter, ModelFile, SyncReport, Tag
from .services.curation import entries_set_flags, loras_assign_intents
from .services.install import download_create


class RatingFilter(admin.SimpleListFilter):
    title = "content rating"
    parameter_name = "rating"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(value), label) for value, label in Rating.choices if value != Rating.BLOCKED]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() is None:
            return queryset
        level = int(self.value() or 0)
        if level == 0:
            return queryset.filter(nsfw_level=0)
        # Highest set bit == level  <=>  level <= nsfw_level < 2 * level
        return queryset.filter(nsfw_level__gte=level, nsfw_level__lt=2 * level)


class VisibilityFilter(admin.SimpleListFilter):
    title = "visibility"
    parameter_name = "visibility"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("public", "Public catalog"), ("private", "Private to a workspace")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "public":
            return queryset.filter(workspace__isnull=True)
        if self.value() == "private":
            return queryset.filter(workspace__isnull=False)
        return queryset


class ModelFileInline(admin.TabularInline):
    model = ModelFile
    extra = 0
    fields = ("name", "kind", "size_bytes", "sha256", "is_primary", "installed_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DownloadInline(admin.TabularInline):
    model = Download
    extra = 0
    fields = ("created_at", "state", "bytes_done", "bytes_total", "message")
    readonly_fields = fields
    can_delete = False
    ordering = ("-created_at",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CatalogEntryAdmin(admin.ModelAdmin):
    list_display = (
        "thumbnail",
        "title",
        "family_badge",
        "source_link",
        "status",
        "rating_label",
        "approved",
        "featured",
        "hidden",
        "download_count",
        "visibility",
    )
    list_display_links = ("thumbnail", "title")
    list_editable = ("approved", "featured", "hidden")
    list_filter = (
        "family",
        "source",
        "status",
        RatingFilter,
        "approved",
        "featured",
        "hidden",
        "family_flagged",
        VisibilityFilter,
        "is_demo",
    )
    search_fields = (
        "name",
        "version_name",
        "external_id",
        "creator_name",
        "tags__name",
        "sha256",
        "upstream_base_model",
    )
    list_per_page = 50
    list_select_related = ("workspace",)
    ordering = ("-featured", "-approved", "-download_count", "name")
    change_list_template = "admin/models_catalog/catalog_change_list.html"
    readonly_fields = (
        "previews",
        "source_link",
        "source",
        "external_id",
        "external_version",
        "revision",
        "upstream_base_model",
        "sha256",
        "size_bytes",
        "store_ref",
        "same_as",
        "synced_at",
        "withdrawn_at",
        "created_at",
        "updated_at",
        "download_count",
        "likes",
        "nsfw_level",
        "commercial_use",
        "allow_no_credit",
        "allow_derivatives",
        "allow_different_license",
        "workspace",
        "created_by",
    )
    inlines = (ModelFileInline, DownloadInline)
    actions = ("approve", "unapprove", "feature", "unfeature", "hide", "unhide", "install")
    curation_fields: tuple[str, ...] = ("approved", "featured", "hidden")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        return [
            (
                None,
                {
                    "fields": (
                        "previews",
                        "name",
                        "version_name",
                        "description",
                        "family",
                        "family_flagged",
                        "tags",
                        *self.extra_fields,
                    )
                },
            ),
            ("Curation", {"fields": self.curation_fields}),
            ("Status", {"fields": ("status", "status_message", "store_ref", "is_demo", "allow_unverified")}),
            (
                "Provenance",
                {
                    "fields": (
                        "source_link",
                        "source",
                        "external_id",
                        "external_version",
                        "revision",
                        "upstream_base_model",
                        "creator_name",
                        "license",
                        "commercial_use",
                        "commercial_use_allowed",
                        "allow_no_credit",
                        "allow_derivatives",
                        "allow_different_license",
                        "nsfw_level",
                        "sha256",
                        "size_bytes",
                        "same_as",
                        "download_count",
                        "likes",
                        "workspace",
                        "created_by",
                        "synced_at",
                        "withdrawn_at",
                        "created_at",
                        "updated_at",
                    ),
                    "classes": ("collapse",),
                },
            ),
            ("Defaults", {"fields": ("default_settings",), "classes": ("collapse",)}),
        ]

    extra_fields: tuple[str, ...] = ()
    filter_horizontal = ("tags",)

    @admin.display(description="")
    def thumbnail(self, entry: CatalogEntry) -> str:
        if not entry.thumbnail_url:
            return format_html(
                '<span style="display:inline-block;width:48px;height:48px;background:#eee;'
                'border-radius:4px;text-align:center;line-height:48px;color:#999">{}</span>',
                "demo" if entry.is_demo else "—",
            )
        return format_html(
            '<img src="{}" loading="lazy" referrerpolicy="no-referrer" style="width:48px;height:48px;'
            'object-fit:cover;border-radius:4px">',
            entry.thumbnail_url,
        )

    @admin.display(description="Name", ordering="name")
    def title(self, entry: CatalogEntry) -> str:
        return format_html("<strong>{}</strong><br><small>{}</small>", entry.name, entry.version_name)

    @admin.display(description="Family", ordering="family")
    def family_badge(self, entry: CatalogEntry) -> str:
        flag = (
            format_html(
                ' <span title="{}" style="color:#c60">⚑</span>',
                f"Upstream says {entry.upstream_base_model or 'nothing'}; check the family",
            )
            if entry.family_flagged
            else ""
        )
        return format_html("{}{}", entry.get_family_display(), flag)

    @admin.display(description="Source", ordering="source")
    def source_link(self, entry: CatalogEntry) -> str:
        if not entry.source_url:
            return entry.get_source_display()
        return format_html(
            '<a href="{}" target="_blank" rel="noopener noreferrer">{} ↗</a>',
            entry.source_url,
            entry.get_source_display(),
        )

    @admin.display(description="Rating", ordering="nsfw_level")
    def rating_label(self, entry: CatalogEntry) -> str:
        return entry.rating_label

    @admin.display(description="Visibility", boolean=False)
    def visibility(self, entry: CatalogEntry) -> str:
        return f"private ({entry.workspace})" if entry.workspace_id else "public"

    @admin.display(description="Previews")
    def previews(self, entry: CatalogEntry) -> str:
        images = [i for i in entry.preview_images if i.get("url")]
        if not images:
            return "No preview images."
        return format_html_join(
            "",
            '<a href="{}" target="_blank" rel="noopener noreferrer"><img src="{}" title="{}" loading="lazy" '
            'referrerpolicy="no-referrer" style="height:160px;margin:0 6px 6px 0;border-radius:4px"></a>',
            ((i["url"], i["url"], i.get("prompt", "")) for i in images),
        )

    def _flags(self, request: HttpRequest, queryset: QuerySet[Any], verb: str, **flags: bool) -> None:
        count = entries_set_flags(queryset=queryset, **flags)
        self.message_user(
            request, f"{verb} {count} {self.model._meta.verbose_name_plural}.", messages.SUCCESS
        )

    @admin.action(description="Approve (publish to the catalog)")
    def approve(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._flags(request, queryset, "Approved", approved=True)

    @admin.action(description="Unapprove")
    def unapprove(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._flags(request, queryset, "Unapproved", approved=False, featured=False)

    @admin.action(description="Feature (implies approve)")
    def feature(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._flags(request, queryset, "Featured", featured=True)

    @admin.action(description="Unfeature")
    def unfeature(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._flags(request, queryset, "Unfeatured", featured=False)

    @admin.action(description="Hide from everyone")
    def hide(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._flags(request, queryset, "Hid", hidden=True)

    @admin.action(description="Unhide")
    def unhide(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._flags(request, queryset, "Unhid", hidden=False)

    @admin.action(description="Install (download into the model store)")
    def install(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        queued, refused = 0, []
        for entry in queryset:
            try:
                with transaction.atomic():
                    download_create(entry=entry, user=request.user)
                queued += 1
            except Exception as exc:  # noqa: BLE001 - reported to the curator, row by row
                refused.append(f"{entry}: {exc}")
        self.message_user(request, f"Queued {queued} install(s).", messages.SUCCESS)
        for line in refused[:10]:
            self.message_user(request, line, messages.WARNING)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "sync_sources": _sync_sources(),
            "latest_reports": SyncReport.objects.all()[:3],
        }
        return super().changelist_view(request, extra_context)


@admin.register(BaseModel)
class BaseModelAdmin(CatalogEntryAdmin):
    extra_fields = ("layout",)


class AssignIntentsForm(forms.Form):
    intents = forms.ModelMultipleChoiceField(
        queryset=Intent.objects.filter(is_active=True), widget=forms.CheckboxSelectMultiple
    )
    replace = forms.BooleanField(
        required=False, help_text="Replace existing intents instead of adding to them."
    )


@admin.register(LoraAdapter)
class LoraAdapterAdmin(CatalogEntryAdmin):
    list_display = (*CatalogEntryAdmin.list_display[:3], "intent_list", *CatalogEntryAdmin.list_display[3:])
    list_filter = (*CatalogEntryAdmin.list_filter, "intents", "lora_format")
    search_fields = (*CatalogEntryAdmin.search_fields, "trigger_words")
    actions = (*CatalogEntryAdmin.actions, "assign_intents")
    extra_fields = ("trigger_words", "recommended_weight", "lora_format", "detected_family")
    curation_fields = ("approved", "featured", "hidden", "intents")
    filter_horizontal = ("tags", "intents")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).prefetch_related("intents")

    @admin.display(description="Intents")
    def intent_list(self, lora: LoraAdapter) -> str:
        return ", ".join(intent.name for intent in lora.intents.all()) or "—"

    @admin.action(description="Assign intents…")
    def assign_intents(self, request: HttpRequest, queryset: QuerySet[LoraAdapter]) -> HttpResponse | None:
        if "apply" in request.POST:
            form = AssignIntentsForm(request.POST)
            if form.is_valid():
                count = loras_assign_intents(
                    queryset=queryset,
                    intents=form.cleaned_data["intents"],
                    replace=form.cleaned_data["replace"],
                )
                names = ", ".join(i.name for i in form.cleaned_data["intents"])
                self.message_user(request, f"Linked {count} LoRAs to {names}.", messages.SUCCESS)
                return None
        else:
            form = AssignIntentsForm()
        return render(
            request,
            "admin/models_catalog/assign_intents.html",
            {
                **self.admin_site.each_context(request),
                "title": "Assign intents",
                "form": form,
                "queryset": queryset,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )


@admin.register(Intent)
class IntentAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "suggested_family", "lora_count", "position", "is_active")
    list_editable = ("position", "is_active")
    list_filter = ("suggested_family", "is_active")
    search_fields = ("name", "slug", "description")
    prepopulated_fields = {"slug": ("name",)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).annotate(lora_total=Count("loras"))

    @admin.display(description="LoRAs", ordering="lora_total")
    def lora_count(self, intent: Intent) -> int:
        return intent.lora_total  # type: ignore[attr-defined]


def _sync_sources() -> list[tuple[str, str]]:
    return [("civitai", "CivitAI"), ("huggingface", "Hugging Face")]


@admin.register(SyncReport)
class SyncReportAdmin(admin.ModelAdmin):
    list_display = (
        "started_at",
        "source",
        "query",
        "trigger",
        "outcome",
        "seen",
        "created",
        "updated",
        "unchanged",
        "withdrawn",
        "filtered",
        "flagged",
        "error_count",
        "finished_at",
    )
    list_filter = ("source", "outcome", "trigger")
    search_fields = ("query",)
    change_list_template = "admin/models_catalog/catalog_change_list.html"
    readonly_fields = (
        "source",
        "query",
        "limit",
        "trigger",
        "triggered_by",
        "outcome",
        "seen",
        "created",
        "updated",
        "unchanged",
        "withdrawn",
        "filtered",
        "flagged",
        "error_table",
        "started_at",
        "finished_at",
    )
    exclude = ("errors",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Errors")
    def error_table(self, report: SyncReport) -> str:
        if not report.errors:
            return "None."
        return format_html(
            "<table>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td></tr>",
                ((e.get("item", ""), e.get("error", "")) for e in report.errors),
            ),
        )

    def get_urls(self) -> list[Any]:
        return [
            path(
                "sync/<str:source>/", self.admin_site.admin_view(self.start_sync), name="models_catalog_sync"
            ),
            *super().get_urls(),
        ]

    def start_sync(self, request: HttpRequest, source: str) -> HttpResponse:
        target = reverse("admin:models_catalog_syncreport_changelist")
        if request.method != "POST" or source not in dict(_sync_sources()):
            return HttpResponseRedirect(target)
        if not request.user.has_perm("models_catalog.add_loraadapter"):
            self.message_user(request, "You may not start syncs.", messages.ERROR)
            return HttpResponseRedirect(target)
        from .tasks import catalog_sync_task

        query = str(request.POST.get("query", ""))[:200]
        limit = request.POST.get("limit")
        kwargs = {
            "source": source,
            "query": query,
            "limit": int(limit) if limit and limit.isdigit() else None,
            "trigger": "admin",
            "user_id": request.user.pk,
        }
        transaction.on_commit(lambda: catalog_sync_task.delay(**kwargs))
        self.message_user(
            request,
            f"{dict(_sync_sources())[source]} sync started; its report appears below when it finishes.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(target)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "sync_sources": _sync_sources()}
        return super().changelist_view(request, extra_context)


@admin.register(Download)
class DownloadAdmin(admin.ModelAdmin):
    list_display = ("created_at", "entry_name", "state", "percent", "workspace", "message")
    list_filter = ("state",)
    readonly_fields = [f.name for f in Download._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Entry")
    def entry_name(self, download: Download) -> str:
        return str(download.entry)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ("name",)
