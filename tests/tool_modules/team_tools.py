"""A team's tool module: one tool with a body, its policy and summary, one tool with none."""

from approvals.tools import Requirement, declare, register


def restock_policy(arguments):
    if arguments["quantity"] > 100:
        return Requirement(True, "Orders of more than 100 units need a reviewer.")
    return Requirement(False, "Small orders run at once.")


@register(
    description="Reorder stock of one item.",
    parameters={"type": "object", "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer"}},
                "required": ["sku", "quantity"]},
    policy=restock_policy,
    summary=lambda arguments: f"Reorder {arguments['quantity']} × {arguments['sku']}",
)
def restock_item(sku: str, quantity: int) -> dict:
    return {"sku": sku, "ordered": quantity}


declare(
    name="ship_parcel",
    description="Ship a parcel; the team's own service does it.",
    parameters={"type": "object", "properties": {"address": {"type": "string"}}, "required": ["address"]},
    policy=lambda arguments: Requirement(True, "Shipping is done by the warehouse."),
)
