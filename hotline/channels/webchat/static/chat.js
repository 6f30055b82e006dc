// The resident's chat page (/chat): the greeting until there are messages, history (the last conversation, closed ones read-only),
// live replies, rating buttons, the place in the agents' queue, resends after a reconnect.
(function () {
  var WHO = {bot: "智能客服", agent: "人工客服", system: "", resident: ""};
  var STATES = {bot: "智能客服为您服务", waiting: "正在为您转接人工客服…", agent: "人工客服为您服务", closed: "会话已结束"};
  var log = document.getElementById("log"), state = document.getElementById("state");
  var typing = document.getElementById("typing"), greeting = document.getElementById("greeting");
  var form = document.getElementById("form"), ended = document.getElementById("ended");
  var tickets = document.getElementById("tickets"), queue = document.getElementById("queue");
  var client = localStorage.getItem("hotline_client");
  if (!client) {
    client = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/[^A-Za-z0-9-]/g, "");
    localStorage.setItem("hotline_client", client);
  }
  var pending = [], ws, seq = 0, status = null, ratingOpen = false;
  function disableChoices() {
    ratingOpen = false;
    Array.prototype.forEach.call(log.querySelectorAll(".choices button"), function (b) { b.disabled = true; });
  }
  function show(sender, text, choices) {
    var box = document.createElement("div");
    box.className = "msg " + sender;
    if (WHO[sender]) { var who = document.createElement("div"); who.className = "who"; who.textContent = WHO[sender]; box.appendChild(who); }
    var body = document.createElement("div"); body.textContent = text; box.appendChild(body);
    if (choices && choices.length) {
      var row = document.createElement("div"); row.className = "choices";
      choices.forEach(function (c) {
        var b = document.createElement("button"); b.type = "button"; b.textContent = c.label;
        b.onclick = function () { send(c.value); };
        row.appendChild(b);
      });
      box.appendChild(row);
      ratingOpen = true; form.hidden = false;  // a digit may be typed too
    }
    log.appendChild(box); log.scrollTop = log.scrollHeight; greeting.hidden = true;
  }
  function setState(s, agent) {
    status = s;
    state.textContent = s === "agent" && agent ? "人工客服 " + agent + " 为您服务" : (STATES[s] || "智能客服为您服务");
    ended.hidden = s !== "closed"; form.hidden = s === "closed" && !ratingOpen;  // closed: read-only once rated
    if (s !== "waiting") queue.hidden = true;
  }
  function setQueue(q) { if (q && status === "waiting") { queue.textContent = q.text; queue.hidden = false; } }
  function clear() { log.textContent = ""; greeting.hidden = false; ratingOpen = false; tickets.hidden = true; queue.hidden = true; }
  function send(text) {
    var m = {type: "message", id: client.slice(0, 8) + "-" + Date.now() + "-" + (seq++), text: text};
    disableChoices();
    pending.push(m); show("resident", text);
    if (ws && ws.readyState === 1) ws.send(JSON.stringify(m));
  }
  function connect() {
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/chat?client=" + encodeURIComponent(client));
    ws.onopen = function () { pending.forEach(function (m) { ws.send(JSON.stringify(m)); }); };
    ws.onmessage = function (e) {
      var data = JSON.parse(e.data);
      if (data.type === "history") {
        clear();
        data.messages.forEach(function (m) { show(m.sender, m.text, m.choices); });
        if (data.tickets_text) { tickets.textContent = data.tickets_text; tickets.hidden = false; }
        setState(data.status); setQueue(data.queue);
      }
      else if (data.type === "message") { show(data.sender, data.text, data.choices); if (data.sender === "bot") typing.textContent = ""; }
      else if (data.type === "status") { setState(data.status, data.agent); }
      else if (data.type === "queue") { setQueue(data); }
      else if (data.type === "ack") { pending = pending.filter(function (m) { return m.id !== data.id; }); }
      else if (data.type === "error") { show("system", data.message); }
      else if (data.type === "typing") { typing.textContent = data.on ? data.text : ""; }
    };
    ws.onclose = function () { state.textContent = "连接已断开，正在重连…"; setTimeout(connect, 2000); };
  }
  document.getElementById("restart").onclick = function () {
    clear(); ended.hidden = true; form.hidden = false; status = null;
    state.textContent = STATES.bot; document.getElementById("text").focus();
  };
  form.onsubmit = function (e) {
    e.preventDefault();
    var input = document.getElementById("text"), text = input.value.trim();
    if (!text) return;
    input.value = ""; send(text);
  };
  connect();
})();
