// app.js: the page's entry module. It imports every other module, loads the
// JSON, sends one WebSocket message, and reports what arrived:
//   #echo    the echoed text (data-done="ok" once it came back)
//   #assets  "LOADED/EXPECTED" assets (data-done="ok" when all loaded)
import { modules, register } from "./state.js";
import { ratio } from "./format.js";
import { loadAll, sources } from "./api.js";
import { echo } from "./ws.js";
import { loaded, check, themed } from "./assets.js";
import { show, items, finish } from "./render.js";

register("app");

// Every module of this directory, app.js included.
const MODULES = ["state", "format", "api", "ws", "assets", "render", "app"];

async function runEcho() {
  const token = new URLSearchParams(location.search).get("token") || "no token";
  const text = `echo ${token}`;
  try {
    const got = await echo(text, (sent) => show("sent", sent));
    show("echo", got);
    finish("echo", got === text);
  } catch (e) {
    show("echo", `failed: ${e.message}`);
    finish("echo", false);
  }
}

async function runAssets() {
  const failed = [];
  let json = 0;
  try {
    const answers = await loadAll();
    json = sources.length;
    items(answers["/api/items"].items);
  } catch (e) {
    failed.push(e.message);
  }
  await loaded();
  const files = check();
  for (const [name, ok] of files) if (!ok) failed.push(name);
  if (!themed()) failed.push("theme.css did not apply");
  const ran = MODULES.filter((name) => modules.includes(name));
  const got = files.filter(([, ok]) => ok).length + ran.length + json;
  const want = files.length + MODULES.length + sources.length;
  show("assets", failed.length ? `${ratio(got, want)}; failed: ${failed.join(", ")}` : ratio(got, want));
  finish("assets", failed.length === 0 && got === want);
}

runEcho();
runAssets();
