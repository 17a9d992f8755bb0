// Compiled by make check-clients against the types openapi-typescript
// writes from the OpenAPI document (shop.d.ts beside it), with tsc --strict:
// a client can build the documented request and read every field of an
// answer without checking for undefined, as the gateway sends them all.
import type { components, paths } from "./shop";

type AddCartItem = paths["/cart/add"]["post"];
type AddCartItemBody = AddCartItem["requestBody"]["content"]["application/json"];
type CartItem = AddCartItem["responses"]["200"]["content"]["application/json"];
type Status = components["schemas"]["Status"];

export const body: AddCartItemBody = { user_id: "7", product_id: "1", quantity: 1 };

export function describe(item: CartItem): string {
  const id: string = item.item_id;
  const user: string = item.user_id;
  const product: string = item.product_id;
  const quantity: number = item.quantity;
  const added: string = item.added_at;
  return `${id}: ${quantity} of ${product} for ${user} at ${added}`;
}

export function firstDetailType(st: Status): string {
  return `${st.code} ${st.message} ${st.details.map((d) => d["@type"]).join(",")}`;
}
