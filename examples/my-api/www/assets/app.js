const socket = new WebSocket(`wss://${location.host}/api/socket/test`);
socket.onmessage = (event) => { document.getElementById("app").textContent = event.data; };
