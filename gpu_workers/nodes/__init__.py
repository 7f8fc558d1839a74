"""Node implementations shipped with Kizy; registered like any third-party pack (see registry)."""
