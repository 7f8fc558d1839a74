from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("workspaces/switch", views.workspace_switch, name="workspace-switch"),
    path("workspaces/new", views.workspace_create_view, name="workspace-create"),
    path("settings/workspace", views.workspace_settings, name="workspace-settings"),
    path("settings/workspace/rename", views.workspace_rename_view, name="workspace-rename"),
    path("settings/workspace/delete", views.workspace_delete_view, name="workspace-delete"),
    path("settings/workspace/invite", views.invitation_create_view, name="invitation-create"),
    path("settings/workspace/invitations/<uuid:invitation_id>/revoke", views.invitation_revoke_view,
         name="invitation-revoke"),
    path("settings/workspace/members/<int:member_id>/role", views.member_role_view, name="member-role"),
    path("settings/workspace/members/<int:member_id>/remove", views.member_remove_view, name="member-remove"),
    path("settings/api-keys", views.api_keys_view, name="api-keys"),
    path("settings/api-keys/<uuid:key_id>/revoke", views.api_key_revoke_view, name="api-key-revoke"),
    path("invitations/<str:token>", views.invitation_accept_view, name="invitation-accept"),
]
