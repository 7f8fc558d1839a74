"""The only way to fetch this app's rows: always by workspace; another workspace's id is a 404 (T2)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404

from accounts.models import Workspace

from .models import Dataset, DatasetItem, TrainingJob

_BAD_ID = (ValueError, TypeError, ValidationError)  # a malformed UUID is "not found" too


def datasets_for_workspace(*, workspace: Workspace) -> QuerySet[Dataset]:
    return Dataset.objects.filter(workspace=workspace)


def trainings_for_workspace(*, workspace: Workspace) -> QuerySet[TrainingJob]:
    return TrainingJob.objects.filter(workspace=workspace).select_related("dataset", "lora", "base_model")


def get_dataset_for_workspace(*, workspace: Workspace, id: object) -> Dataset:
    try:
        return datasets_for_workspace(workspace=workspace).get(id=id)
    except (Dataset.DoesNotExist, *_BAD_ID) as exc:
        raise Http404("No such dataset in this workspace.") from exc


def get_dataset_item_for_workspace(*, workspace: Workspace, dataset: Dataset, id: object) -> DatasetItem:
    try:
        return DatasetItem.objects.get(workspace=workspace, dataset=dataset, id=id)
    except (DatasetItem.DoesNotExist, *_BAD_ID) as exc:
        raise Http404("No such image in this dataset.") from exc


def get_training_for_workspace(*, workspace: Workspace, id: object) -> TrainingJob:
    try:
        return trainings_for_workspace(workspace=workspace).get(id=id)
    except (TrainingJob.DoesNotExist, *_BAD_ID) as exc:
        raise Http404("No such training in this workspace.") from exc
