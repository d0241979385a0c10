// format.js: text for the page.
import { register } from "./state.js";

register("format");

export function ratio(got, want) {
  return `${got}/${want}`;
}

export function describe(item) {
  return `${item.name}: ${item.count}`;
}
