from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    """`/api/v1/things` and `/api/v1/things/` both route (clients differ on the trailing slash)."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"
