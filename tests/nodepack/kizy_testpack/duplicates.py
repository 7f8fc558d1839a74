"""Not registered: a module whose node reuses the type name ``add``, for the duplicate-type test."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from gpu_workers.sdk import Node, NodeContext


class OtherAdd(Node):
    type: ClassVar[str] = "add"
    version: ClassVar[str] = "2.0.0"
    category: ClassVar[str] = "math"
    title: ClassVar[str] = "Add (other pack)"
    description: ClassVar[str] = "Same type name as kizy_testpack.nodes.Add."

    class Inputs(BaseModel):
        a: int = Field(description="First number.")

    class Outputs(BaseModel):
        sum: int = Field(description="a")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        return self.Outputs(sum=inputs.a)


NODES: list[type[Node]] = [OtherAdd]
