// The resident's chat page (/chat): history, live replies, resends after a reconnect.
(function () {
  var WHO = {bot: "智能客服", agent: "人工客服", system: "", resident: ""};
  var STATES = {bot: "智能客服为您服务", waiting: "正在为您转接人工客服…", agent: "人工客服为您服务", closed: "会话已结束"};
  var log = document.getElementById("log"), state = document.getElementById("state");
  var typing = document.getElementById("typing");
  var client = localStorage.getItem("hotline_client");
  if (!client) {
    client = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/[^A-Za-z0-9-]/g, "");
    localStorage.setItem("hotline_client", client);
  }
  var pending = [], ws, seq = 0;
  function show(sender, text) {
    var box = document.createElement("div");
    box.className = "msg " + sender;
    if (WHO[sender]) { var who = document.createElement("div"); who.className = "who"; who.textContent = WHO[sender]; box.appendChild(who); }
    var body = document.createElement("div"); body.textContent = text; box.appendChild(body);
    log.appendChild(box); log.scrollTop = log.scrollHeight;
  }
  function setState(s, agent) { state.textContent = s === "agent" && agent ? "人工客服 " + agent + " 为您服务" : (STATES[s] || "智能客服为您服务"); }
  function connect() {
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/chat?client=" + encodeURIComponent(client));
    ws.onopen = function () { pending.forEach(function (m) { ws.send(JSON.stringify(m)); }); };
    ws.onmessage = function (e) {
      var data = JSON.parse(e.data);
      if (data.type === "history") { log.textContent = ""; data.messages.forEach(function (m) { show(m.sender, m.text); }); setState(data.status); }
      else if (data.type === "message") { show(data.sender, data.text); if (data.sender === "bot") typing.textContent = ""; }
      else if (data.type === "status") { setState(data.status, data.agent); }
      else if (data.type === "ack") { pending = pending.filter(function (m) { return m.id !== data.id; }); }
      else if (data.type === "error") { show("system", data.message); }
      else if (data.type === "typing") { typing.textContent = data.on ? data.text : ""; }
    };
    ws.onclose = function () { state.textContent = "连接已断开，正在重连…"; setTimeout(connect, 2000); };
  }
  document.getElementById("form").onsubmit = function (e) {
    e.preventDefault();
    var input = document.getElementById("text"), text = input.value.trim();
    if (!text) return;
    var m = {type: "message", id: client.slice(0, 8) + "-" + Date.now() + "-" + (seq++), text: text};
    pending.push(m); show("resident", text); input.value = "";
    if (ws && ws.readyState === 1) ws.send(JSON.stringify(m));
  };
  connect();
})();
