// ws.js: one message through a WebSocket to the proxy's /ws route (the echo
// upstream), on the page's own origin.
import { register } from "./state.js";

register("ws");

// Resolves to the echoed text; rejects on an error or a close before it.
export function echo(text, onSent) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`wss://${location.host}/ws`);
    socket.onopen = () => {
      socket.send(text);
      onSent(text);
    };
    socket.onmessage = (event) => {
      resolve(event.data);
      socket.close(1000, "done");
    };
    socket.onerror = () => reject(new Error("WebSocket error"));
    socket.onclose = (event) => reject(new Error(`WebSocket closed (${event.code}) before the echo`));
  });
}
