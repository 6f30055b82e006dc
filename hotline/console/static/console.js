// The agents' console. Plain JavaScript on /api and /ws/events; no framework, no build.
// Every value from the server is put on the page with textContent (see el()), never
// as HTML, so a resident's message or a ticket description can only ever be text.
"use strict";

const S = {
  me: null, csrf: "", meta: null, view: "",
  queue: { waiting: [], active: [] },
  convId: null, conv: null,
  ticket: null, tickets: [], nextBefore: null, pendingAction: null,
  ws: null, wsDelay: 500, timers: {},
};
const $ = (id) => document.getElementById(id);

let ROLE_NAMES = {};  // role → its Chinese name, from /api/meta
let CHANNELS = {};  // channel name → its Chinese label, from /api/meta (the server's channel registry)
const CONV_STATUS = { bot: "智能客服", waiting: "等待人工", agent: "人工接待中", closed: "已结束" };
const HANDOFF = { requested: "居民要求人工", fallback: "机器人未能理解", angry: "居民情绪激动",
  api_unavailable: "业务系统不可用", bot_unavailable: "智能客服不可用" };
const SENDERS = { resident: "居民", bot: "智能客服", agent: "客服", system: "系统" };
const ACTIONS = { assign: "派单", start: "开始处理", resolve: "办结", callback: "记录回访", close: "归档",
  reopen: "重新处理", reroute: "转派", comment: "备注", create: "创建", link: "关联会话", escalate: "督办",
  arrive: "到场", request_extension: "申请延期", approve_extension: "批准延期", reject_extension: "驳回延期",
  return: "退单", attach: "附件", chase: "督办" };
// What a toast says once an action is done (not "备注已完成").
const DONE = { comment: "备注已添加", assign: "已派单", start: "已开始处理", resolve: "已办结", callback: "回访已记录",
  close: "已归档", reopen: "已重新处理", reroute: "已转派", arrive: "已登记到场", request_extension: "延期申请已提交",
  approve_extension: "已批准延期", reject_extension: "已驳回延期", return: "已退单", chase: "已督办，责任人已收到通知" };
// An escalation notice's level in words and colour (its kind is the escalation step's name).
const NOTICE_LEVELS = { warning: ["预警", "warning"], response_overdue: ["响应超时", "overdue"], overdue: ["已超时", "overdue"],
  on_site_overdue: ["到场超时", "overdue"], overdue_level2: ["二级督办", "level2"], reopened: ["回访不满意重办", "level2"],
  returned: ["退单待重派", "warning"], chase: ["人工督办", "level2"], conversation_closed: ["会话已被结束", "warning"],
  conversation_reassigned_away: ["会话已转出", "warning"], conversation_reassigned_to: ["会话已转入", "warning"] };
const ANSWERS = { satisfied: "满意", basically_satisfied: "基本满意", dissatisfied: "不满意", unclear: "未能识别",
  unreachable: "未联系上" };
const OUTCOMES = { self_served: "自助服务", ticket: "已建工单", transferred: "已转人工", voicemail: "语音留言",
  abandoned: "中途挂机", failed: "失败" };
const ERRORS = {
  bad_credentials: "用户名或密码错误", csrf: "页面已过期，请刷新后重试", forbidden: "您的角色无权执行此操作",
  not_yours: "请先接入该会话", closed: "会话已结束", invalid_transition: "工单当前状态不允许此操作",
  missing_note: "请填写说明", missing_assignee: "请选择责任人", missing_reached: "请选择是否联系上居民",
  unknown_account: "户号不存在", invalid_phone: "电话号码格式不正确", unknown_assignee: "责任人不存在或已停用",
  linked_elsewhere: "该工单已关联其他会话", not_found: "记录不存在或无权查看", unauthenticated: "请先登录",
  invalid_input: "填写的内容有误", not_serving: "只有接待该会话的坐席、主管或管理员可以结束会话",
  query_too_short: "请输入至少两个字的姓名或地址，或完整的户号、电话号码",
};

class ApiFailure extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

// ---- small helpers ---------------------------------------------------------

function el(tag, props = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids) if (kid !== null && kid !== undefined && kid !== false) e.append(kid);
  return e;
}

function clear(node, ...kids) { node.replaceChildren(...kids.filter((k) => k)); }

const TIME_PARTS = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai", hourCycle: "h23",
  year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
function fmtTime(iso) {  // one format everywhere, as the server writes it in notices: 2026-09-24 17:00 (Beijing)
  if (!iso) return "";
  const p = Object.fromEntries(TIME_PARTS.formatToParts(new Date(iso)).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
}

function fmtSpan(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d) return `${d}天${h}小时${m}分`;
  if (h) return `${h}小时${m}分`;
  if (m) return `${m}分${sec}秒`;
  return `${sec}秒`;
}

function toast(text, bad = false) {
  // Never an empty box: a failure without words still says that something failed.
  const words = String(text ?? "").trim() || (bad ? "操作未完成，请稍后重试" : "");
  if (!words) return;
  const t = el("div", { class: bad ? "toast bad" : "toast", text: words });
  $("toasts").append(t);
  setTimeout(() => t.remove(), 6000);
}

function later(name, fn, ms = 60) {  // coalesce bursts of events into one refresh
  clearTimeout(S.timers[name]);
  S.timers[name] = setTimeout(fn, ms);
}

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (method !== "GET") opts.headers["X-CSRF-Token"] = S.csrf;
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  let data = null;
  try { data = await resp.json(); } catch (_) { /* not JSON */ }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    if (resp.status === 401 && path !== "/api/auth/login") showLogin();
    let message = ERRORS[err.code] || err.message || `请求失败（${resp.status}）`;
    if (err.code === "taken" || err.code === "locked") message = err.message;
    if (err.details && Array.isArray(err.details)) message += "：" + err.details.map((d) => d.label || d.field).join("、");  // the server names fields in Chinese
    throw new ApiFailure(resp.status, err.code || `http_${resp.status}`, message);
  }
  return data;
}

function can(...roles) { return S.me && roles.includes(S.me.role); }

// ---- sign-in -----------------------------------------------------------------

function showLogin() {
  if (S.ws) { S.ws.onclose = null; S.ws.close(); S.ws = null; }
  S.me = null;
  $("app").hidden = true;
  $("login-view").hidden = false;
  $("login-username").focus();
}

async function start() {
  try {
    S.me = await api("GET", "/api/auth/me");
  } catch (_) {
    showLogin();
    return;
  }
  S.csrf = S.me.csrf_token;
  S.meta = await api("GET", "/api/meta");
  CHANNELS = Object.fromEntries(S.meta.channels.map((c) => [c.name, c.label]));
  ROLE_NAMES = S.meta.roles;
  $("login-view").hidden = true;
  $("app").hidden = false;
  $("who").textContent = `${S.me.display_name}（${ROLE_NAMES[S.me.role] || S.me.role}）`;
  for (const a of document.querySelectorAll("[data-roles]")) a.hidden = !a.dataset.roles.split(" ").includes(S.me.role);
  fillFilters();
  connectLive();
  route();
  loadNotices();
  if (can("agent", "supervisor", "admin")) loadCallbacks();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    await api("POST", "/api/auth/login", { username: $("login-username").value.trim(), password: $("login-password").value });
    $("login-password").value = "";
    await start();
  } catch (err) {
    $("login-error").textContent = err.message;
  }
});

$("logout").addEventListener("click", async () => {
  try { await api("POST", "/api/auth/logout"); } finally { location.hash = ""; showLogin(); }
});

// ---- navigation ----------------------------------------------------------------

function route() {
  if (!S.me) return;
  const [view, arg] = decodeURIComponent(location.hash.slice(1)).split("/");
  const allowed = [...document.querySelectorAll("[data-nav]")].filter((a) => !a.hidden).map((a) => a.dataset.nav);
  const target = allowed.includes(view) ? view : allowed[0];
  if (target !== view) { location.hash = target; return; }
  S.view = target;
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("current", a.dataset.nav === target);
  for (const name of ["queue", "tickets", "calls", "callbacks", "reports", "notices", "history", "search", "supervise", "incidents", "audit"]) $(`${name}-view`).hidden = name !== target;
  if (target === "queue") { loadQueue(); if (arg) openConversation(Number(arg)); }
  if (target === "tickets") { loadTickets(); if (arg) openTicket(arg); window.Gov12345?.failed(); }
  if (target === "calls") loadCalls();
  if (target === "callbacks") loadCallbacks();
  if (target === "notices") loadNotices();
  if (target === "reports") window.HotlineReports?.show(S.me, S.meta);
  if (target === "incidents") window.HotlineIncidents?.show({ api, toast, fmtTime, me: S.me, meta: S.meta });
  if (target === "audit") window.HotlineAudit?.show();  // 查阅记录
  window.HotlineShift?.show(target, arg);  // 会话记录, 搜索, 坐席监控
}
window.addEventListener("hashchange", route);

// ---- live events -------------------------------------------------------------

function connectLive() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/events`);
  S.ws = ws;
  ws.onopen = () => { S.wsDelay = 500; setLive(true); };
  ws.onmessage = (msg) => { try { onEvent(JSON.parse(msg.data)); } catch (err) { console.error(err); } };
  ws.onclose = () => {
    setLive(false);
    if (S.ws !== ws || !S.me) return;
    setTimeout(async () => {
      try { await api("GET", "/api/auth/me"); } catch (_) { return; }  // signed out: the login shows
      connectLive();
    }, S.wsDelay);
    S.wsDelay = Math.min(S.wsDelay * 2, 10000);
  };
}

function setLive(on) {
  const s = $("live-status");
  s.className = on ? "live on" : "live off";
  s.textContent = on ? "实时" : "重连中…";
}

function onEvent(evt) {
  const type = evt.type || "";
  window.HotlineShift?.onEvent(evt);  // presence, whispers, notifications, the supervisors' overview
  if (type.startsWith("outbox.")) { window.Gov12345?.onEvent(evt); return; }
  if (type === "hello" || type === "resync") {  // maybe missed events: fetch what is on screen again
    refreshView();
    loadNotices();
    if (can("agent", "supervisor", "admin")) later("queue", loadQueue);
    return;
  }
  if (type.startsWith("conversation.")) {
    if (type === "conversation.message") updatePreview(evt);  // the queue's order and members stay
    else if (S.view === "queue" || type === "conversation.waiting") later("queue", loadQueue);
    if (type === "conversation.message" && evt.message && !evt.truncated && S.liveDuring?.id === evt.conversation_id) {
      S.liveDuring.live.push(evt.message);
    }
    if (evt.conversation_id === S.convId) {
      if (type === "conversation.message" && evt.message && !evt.truncated) appendMessage(evt.message);
      else later("conv", () => openConversation(S.convId, true));
      if (type === "conversation.delivery_failed") toast(`消息未送达：${evt.error || "渠道拒绝"}`, true);
    }
    if (type === "conversation.waiting") toast(`新的${CHANNELS[evt.channel] || ""}会话等待人工接待`);
    return;
  }
  if (type === "ticket.changed") {
    if (S.view === "tickets") later("tickets", () => loadTickets());
    if (S.ticket && S.ticket.number === evt.ticket) later("ticket", () => openTicket(evt.ticket, true));
    if (S.conv && evt.conversation_id === S.convId) later("convTickets", loadConversationTickets);
    return;
  }
  if (type === "notification") {
    toast(evt.message || "新的督办通知", true);
    loadNotices();
  }
  if (type === "callback.changed") later("callbacks", loadCallbacks);
  if (["incident.changed", "outage.changed", "alert.changed"].includes(type)) {
    if (type === "incident.changed" && evt.action === "raise") toast(`发现疑似事件：${evt.title || ""}（${evt.reports || 0}条报告）`, true);
    if (type === "alert.changed" && evt.action === "raise") toast(`舆情预警：${(evt.words || []).join("、")}`, true);
    later("incidents", () => window.HotlineIncidents?.refresh());
  }
  if (type.startsWith("call.") && S.view === "calls") later("calls", loadCalls);
}

function refreshView() {
  if (S.view === "tickets") { loadTickets(); if (S.ticket) openTicket(S.ticket.number, true); }
  if (S.view === "calls") loadCalls();
  if (S.view === "callbacks") loadCallbacks();
  if (S.view === "queue" && S.convId) openConversation(S.convId, true);
}

// ---- the queue -------------------------------------------------------------------

async function loadQueue() {
  if (!can("agent", "supervisor", "admin")) return;
  try { S.queue = await api("GET", "/api/queue"); } catch (err) { toast(err.message, true); return; }
  $("waiting-count").textContent = S.queue.waiting.length || "";
  $("active-title").textContent = S.me.role === "agent" ? "我的会话" : "接待中（全部）";
  renderQueueList($("waiting-list"), S.queue.waiting, "暂无等待的会话");
  renderQueueList($("active-list"), S.queue.active, "暂无接待中的会话");
}

function renderQueueList(list, items, emptyText) {
  clear(list, ...(items.length ? items.map(queueItem) : [el("li", { class: "empty", text: emptyText })]));
  tickWaits();
}

function queueItem(c) {
  const last = c.last_resident_message;
  const category = c.bot_intent && S.meta.categories[c.bot_intent];
  return el("li", { dataset: { conversationId: c.id, waitingSince: c.waiting_since || "" },
    class: c.id === S.convId ? "selected" : "", onclick: () => { location.hash = `queue/${c.id}`; } },
    el("div", { class: "row" },
      el("span", {}, el("span", { class: "tag", text: CHANNELS[c.channel] || c.channel }),
        category ? el("span", { class: "tag", text: category }) : null,
        c.handoff_reason === "angry" ? el("span", { class: "tag urgent", text: "情绪激动" }) : null),
      c.status === "waiting" ? el("span", { class: "wait" }) : el("span", { class: "meta", text: c.agent_name || "" })),
    el("div", { class: "preview", text: last ? last.text : "" }));
}

function updatePreview(evt) {
  const m = evt.message;
  if (!m || m.direction !== "in") return;
  for (const list of [S.queue.waiting, S.queue.active]) {
    const c = list.find((x) => x.id === evt.conversation_id);
    if (c) c.last_resident_message = m;
  }
  const li = document.querySelector(`.lists li[data-conversation-id="${Number(evt.conversation_id)}"] .preview`);
  if (li) li.textContent = m.text;
}

function tickWaits() {
  const now = Date.now();
  for (const li of document.querySelectorAll("#waiting-list li[data-waiting-since]")) {
    const since = li.dataset.waitingSince;
    const span = li.querySelector(".wait");
    if (!since || !span) continue;
    const ms = now - new Date(since).getTime();
    span.textContent = `已等待 ${fmtSpan(ms)}`;
    span.classList.toggle("long", ms > 3 * 60 * 1000);
  }
}

async function openConversation(id, quiet = false) {
  if (!id) return;
  // Messages that arrive while the conversation is fetched may be missing from the answer: kept aside and
  // added after it, or a live message appended meanwhile would be wiped by the redraw.
  const live = [];
  S.liveDuring = { id, live };
  let conv;
  try { conv = await api("GET", `/api/conversations/${id}`); } catch (err) { if (!quiet) toast(err.message, true); return; }
  S.convId = id;
  S.conv = conv;
  $("conversation").hidden = false;
  $("conversation-empty").hidden = true;
  if (!quiet) { $("conv-error").textContent = ""; if ($("ticket-dialog").open) $("ticket-dialog").close(); }
  for (const li of document.querySelectorAll(".lists li[data-conversation-id]")) {
    li.classList.toggle("selected", Number(li.dataset.conversationId) === id);
  }
  renderConversationHead();
  clear($("transcript"));
  for (const m of conv.messages) appendMessage(m);
  for (const m of live) appendMessage(m);  // appendMessage skips any the answer had
  if (S.liveDuring && S.liveDuring.live === live) S.liveDuring = null;
  loadConversationTickets();
  loadConversationTrail();
  window.HotlineShift?.conversationOpened(conv, quiet);  // the resident's context, whispers
}

function renderConversationHead() {
  const c = S.conv;
  const mine = c.status === "agent" && c.agent_id === S.me.id;
  const oversee = c.status === "agent" && can("supervisor", "admin");
  $("conv-title").textContent = `${CHANNELS[c.channel] || c.channel}会话 #${c.id}`;
  const bits = [`状态：${CONV_STATUS[c.status] || c.status}`];
  if (c.bot_intent) bits.push(`机器人判断：${S.meta.categories[c.bot_intent] || c.bot_intent}`);
  if (c.handoff_reason) bits.push(`转人工原因：${HANDOFF[c.handoff_reason] || c.handoff_reason}`);
  if (c.satisfaction) bits.push(`满意度：${c.satisfaction}分`);
  if (c.agent_name) bits.push(`接待坐席：${c.agent_name}`);
  $("conv-meta").textContent = bits.join(" · ");
  $("take-over").hidden = !["waiting", "bot"].includes(c.status);
  $("hand-back").hidden = !(mine || oversee);
  $("close-conv").hidden = !(mine || (c.status !== "closed" && can("supervisor", "admin")));  // others' are not an agent's to end
  $("reply-form").hidden = !mine;  // a supervisor whispers or takes over; the resident hears one person
  $("new-ticket").hidden = false;
}

function appendMessage(m) {
  const list = $("transcript");
  if (list.querySelector(`li[data-id="${Number(m.id)}"]`)) return;
  const cls = m.sender_kind === "system" ? "system" : m.direction;
  // Only the conversation's own agent speaks to the resident, so a live reply without a name is theirs.
  const agentName = m.sender_name || (S.conv && S.conv.id === S.convId && S.conv.agent_name);
  const speaker = m.sender_kind === "agent" && agentName ? `客服 ${agentName}` : SENDERS[m.sender_kind] || m.sender_kind;
  const who = `${speaker} · ${fmtTime(m.created_at)}`;
  const body = m.kind === "text" || m.kind === "event" ? m.text : `[${{ image: "图片", voice: "语音", location: "位置" }[m.kind] || m.kind}] ${m.text || ""}`;
  placeByTime(list, el("li", { class: cls, dataset: { id: m.id } }, el("span", { class: "who", text: who }), body,
    m.delivery_status === "failed" ? el("span", { class: "failed", text: `未送达：${m.delivery_error || ""}` }) : null), m.created_at);
}

// The transcript is one trail in time order, whispers (shift.js) among the messages: a whisper written
// at 18:03 goes above a message of 18:04, whichever arrived on the page first.
function placeByTime(list, li, at) {
  const t = new Date(at).getTime() || 0;
  li.dataset.at = String(t);
  const after = [...list.children].find((x) => Number(x.dataset.at || 0) > t);
  list.insertBefore(li, after || null);
  if (!after) list.scrollTop = list.scrollHeight;
}

async function conversationAction(path, body) {
  $("conv-error").textContent = "";
  try {
    const result = await api("POST", `/api/conversations/${S.convId}/${path}`, body);
    await openConversation(S.convId, true);
    loadQueue();
    return result;
  } catch (err) {
    $("conv-error").textContent = err.message;
    toast(err.message, true);
    if (err.status === 409) { openConversation(S.convId, true); loadQueue(); }
    return null;
  }
}

$("take-over").addEventListener("click", () => conversationAction("take_over"));
$("hand-back").addEventListener("click", () => conversationAction("hand_back"));
$("close-conv").addEventListener("click", () => {
  if (confirm("结束会话后将请居民评价，确定结束吗？")) conversationAction("close");
});
// The bot's category was wrong: the agent gives the right one, kept for the next round of training data.
const NLU_INTENTS = { repair: "报修", complaint: "投诉", inquiry: "咨询", billing: "查询/缴费", handoff: "转人工" };
$("nlu-wrong").addEventListener("click", () => {
  fillSelect($("nlu-intent"), NLU_INTENTS, "", "正确的类别");
  $("nlu-fix").hidden = !$("nlu-fix").hidden;
});
$("nlu-send").addEventListener("click", async () => {
  if (!$("nlu-intent").value) return;
  if (await conversationAction("nlu_feedback", { correct_intent: $("nlu-intent").value })) {
    $("nlu-fix").hidden = true;
    toast("已记录，留作下一轮训练数据");
  }
});
$("reply-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = $("reply-text").value.trim();
  if (!text) return;
  $("reply-send").disabled = true;
  const result = await conversationAction("reply", { text });
  $("reply-send").disabled = false;
  if (result) {
    $("reply-text").value = "";
    if (result.delivery_status === "failed") toast(`回复已保存，但未送达：${result.delivery_error || ""}`, true);
  }
});
$("reply-text").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) $("reply-form").requestSubmit();
});

// ---- tickets from a conversation ------------------------------------------------------

const CONV_ACTIONS = {
  create: "开始会话", receive: "居民来信", bot_reply: "智能客服回复", handoff: "转人工", take_over: "接入",
  reply: "客服回复", notice: "系统通知", hand_back: "转回智能客服", close: "结束会话", rate: "居民评价",
  delivery_failed: "发送失败",
};

async function loadConversationTrail() {
  if (!S.convId || !$("conv-trail-box").open) return;
  let data;
  try { data = await api("GET", `/api/conversations/${S.convId}/events`); } catch (_) { return; }
  clear($("conv-trail"), ...data.items.map((e) => el("li", {},
    el("span", { class: "meta", text: fmtTime(e.at) }),
    ` ${CONV_ACTIONS[e.action] || e.action} · ${e.actor.name}`,
    e.data && e.data.reason ? ` （${HANDOFF[e.data.reason] || e.data.reason}）` : "",
    e.data && e.data.satisfaction ? ` （${e.data.satisfaction}分）` : "")));
}
$("conv-trail-box").addEventListener("toggle", () => loadConversationTrail());

async function loadConversationTickets() {
  if (!S.convId) return;
  let data;
  try { data = await api("GET", `/api/conversations/${S.convId}/tickets`); } catch (_) { return; }
  S.convTickets = { for: S.convId, items: data.items };  // the canned replies' {工单号} and {电话}
  clear($("conv-tickets"), ...(data.items.length ? data.items.map((t) => el("li", {},
    el("a", { href: `#tickets/${t.number}`, text: t.number }),
    ` ${t.business_type_name} · ${t.status_label} · ${t.department_name || ""}`)) : [el("li", { class: "meta", text: "暂无" })]));
}

function fillSelect(select, options, value, blank) {
  clear(select, ...(blank !== undefined ? [el("option", { value: "", text: blank })] : []),
    ...Object.entries(options).map(([k, v]) => el("option", { value: k, text: v })));
  select.value = value || "";
}

function businessTypesOf(category) {
  const out = {};
  for (const [code, bt] of Object.entries(S.meta.business_types)) if (!category || bt.category === category) out[code] = bt.name;
  return out;
}

$("new-ticket").addEventListener("click", async () => {
  let draft;
  try { draft = await api("GET", `/api/conversations/${S.convId}/ticket_draft`); } catch (err) { toast(err.message, true); return; }
  fillSelect($("tf-category"), S.meta.categories, draft.category, "请选择");
  fillSelect($("tf-business-type"), businessTypesOf(draft.category), draft.business_type, "按类别默认");
  $("tf-priority").value = draft.priority || "";
  $("tf-account").value = draft.account_number || "";
  $("tf-phone").value = draft.phone || "";
  $("tf-contact").value = "";
  $("tf-address").value = draft.address || "";
  $("tf-description").value = draft.description || "";
  $("tf-error").textContent = "";
  $("ticket-form").dataset.latitude = draft.latitude ?? "";
  $("ticket-form").dataset.longitude = draft.longitude ?? "";
  $("ticket-form").hidden = false;
  if (!$("ticket-dialog").open) $("ticket-dialog").showModal();  // where the agent's eyes are
  window.HotlineShift?.fillOpenTickets($("tf-open"));  // the resident's open tickets first: link, not duplicate
  $("tf-category").focus();
});
$("tf-category").addEventListener("change", () => {
  fillSelect($("tf-business-type"), businessTypesOf($("tf-category").value), "", "按类别默认");
});
$("tf-cancel").addEventListener("click", () => { $("ticket-dialog").close(); });
$("ticket-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = $("ticket-form");
  const optional = (v) => (v.trim() ? v.trim() : null);
  const body = {
    category: $("tf-category").value, description: $("tf-description").value,
    channel: S.conv.channel, conversation_id: S.convId,
    business_type: optional($("tf-business-type").value), priority: optional($("tf-priority").value),
    account_number: optional($("tf-account").value), phone: optional($("tf-phone").value),
    contact_name: $("tf-contact").value.trim(), address: $("tf-address").value.trim(),
  };
  if (f.dataset.latitude) { body.latitude = Number(f.dataset.latitude); body.longitude = Number(f.dataset.longitude); }
  $("tf-submit").disabled = true;
  try {
    const t = await api("POST", "/api/tickets", body);
    $("ticket-dialog").close();
    toast(`已创建工单 ${t.number}（${t.department_name}，${t.resolution_limit_text}内办结）`);
    loadConversationTickets();
  } catch (err) {
    $("tf-error").textContent = err.message;
  } finally {
    $("tf-submit").disabled = false;
  }
});
$("link-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const number = $("link-number").value.trim();
  if (!number) return;
  try {
    await api("POST", `/api/conversations/${S.convId}/link_ticket`, { number });
    $("link-number").value = "";
    loadConversationTickets();
  } catch (err) { toast(err.message, true); }
});

// ---- tickets -----------------------------------------------------------------------

function fillFilters() {
  fillSelect($("f-department"), S.meta.departments, "", "全部部门");
  fillSelect($("f-category"), S.meta.categories, "", "全部类别");
  fillSelect($("f-channel"), CHANNELS, "", "全部来源");
  if (S.me.role === "department") $("f-department").hidden = true;
}

function ticketQuery(before) {
  const q = new URLSearchParams({ limit: "50" });
  const add = (k, v) => { if (v) q.set(k, v); };
  add("department", $("f-department").value);
  add("status", $("f-status").value);
  add("category", $("f-category").value);
  add("channel", $("f-channel").value);
  if ($("f-overdue").checked) q.set("overdue", "true");
  add("q", $("f-q").value.trim());
  if (before) q.set("before_id", before);
  return q.toString();
}

async function loadTickets(more = false) {
  let data;
  try { data = await api("GET", `/api/tickets?${ticketQuery(more ? S.nextBefore : null)}`); } catch (err) { toast(err.message, true); return; }
  S.tickets = more ? S.tickets.concat(data.items) : data.items;
  S.nextBefore = data.next_before_id;
  $("ticket-more").hidden = !S.nextBefore;
  const selected = S.ticket && S.ticket.number;
  clear($("ticket-rows"), ...(S.tickets.length ? [] : [el("tr", { class: "empty-row" },
    el("td", { colspan: 8, class: "meta", text: "没有符合条件的工单" }))]), ...S.tickets.map((t) => el("tr", {
    dataset: { number: t.number }, class: [t.overdue ? "overdue" : "", t.number === selected ? "selected" : ""].join(" ").trim(),
    onclick: () => { location.hash = `tickets/${t.number}`; } },
  el("td", { text: t.number }),
  el("td", {}, t.priority === "urgent" ? el("span", { class: "tag urgent", text: "紧急" }) : null, t.business_type_name),
  el("td", { text: t.department_name || "" }),
  el("td", { text: t.status_label }),
  el("td", { class: "due", text: t.overdue ? `已超时 ${fmtSpan(Date.now() - new Date(t.resolution_due_at))}` : fmtTime(t.resolution_due_at) }),
  el("td", { text: t.assignee_name || "未派单" }),
  el("td", { class: "addr", text: t.address || "", title: t.address || "" }),
  el("td", { text: fmtTime(t.created_at) }))));
}
$("ticket-filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadTickets(); });
$("ticket-more").addEventListener("click", () => loadTickets(true));
for (const id of ["f-department", "f-status", "f-category", "f-channel", "f-overdue"]) $(id).addEventListener("change", () => loadTickets());

async function openTicket(number, quiet = false) {
  let t;
  try { t = await api("GET", `/api/tickets/${encodeURIComponent(number)}`); } catch (err) {
    if (!quiet) {
      toast(err.message, true);
      S.ticket = null;
      $("ticket").hidden = true;
      for (const tr of document.querySelectorAll("#ticket-rows tr.selected")) tr.classList.remove("selected");
    }
    return;
  }
  for (const tr of document.querySelectorAll("#ticket-rows tr[data-number]")) tr.classList.toggle("selected", tr.dataset.number === t.number);
  const keepAction = quiet && S.ticket && S.ticket.number === t.number ? S.pendingAction : null;
  S.ticket = t;
  $("ticket").hidden = false;
  $("t-title").textContent = `工单 ${t.number} · ${t.status_label}`;
  const rows = [
    ["类别", `${S.meta.categories[t.category] || t.category} / ${t.business_type_name}`],
    ["紧急程度", t.priority === "urgent" ? "紧急" : "一般"],
    ["承办部门", t.department_name], ["责任人", t.assignee_name || "未派单"], ["督办人", t.supervisor_name],
    ["户号", t.account_number], ["联系人", t.contact_name], ["联系电话", t.contact_phone], ["地址", t.address],
    ["问题描述", t.description], ["来源", CHANNELS[t.channel] || t.channel],
    ["受理时间", fmtTime(t.created_at)],
    ["响应时限", `${t.response_limit_text || ""}（${fmtTime(t.response_due_at)}前）`],
    ["办结时限", `${t.resolution_limit_text || ""}（${fmtTime(t.resolution_due_at)}前）`],
    ["到场", t.arrived_at ? `${fmtTime(t.arrived_at)} 已到场` : t.on_site_due_at ? `应于${fmtTime(t.on_site_due_at)}前到场` : ""],
    ["延期申请", t.extension ? `申请延至${fmtTime(t.extension.due_at)}：${t.extension.reason}（待督办人审批）` : ""],
    ["回访", t.callback_at ? `${fmtTime(t.callback_at)} ${t.callback_result || ""}` : `应于${fmtTime(t.callback_due_at) || "办结后"}回访`],
    ["满意度", t.satisfaction ? `${t.satisfaction}分` : ""],
    ["督办级别", t.escalation_level ? `第${t.escalation_level}级` : ""],
    ["会话", t.conversation_id ? `#${t.conversation_id}` : ""],
  ];
  clear($("t-fields"), ...rows.filter(([, v]) => v).flatMap(([k, v]) => [el("dt", { text: k }),
    // Conversations are read where they are served (会话队列); department staff have no such view, so
    // for them the number is text, not a link that leads nowhere.
    k === "会话" && can("agent", "supervisor", "admin") ? el("dd", {}, el("a", { href: `#queue/${t.conversation_id}`, text: `${v}（查看会话）` }))
      : el("dd", { text: v })]));
  window.Gov12345?.show(t);  // a 12345 ticket's order, limits and messages (gov12345.js)
  clear($("t-trail"), ...t.events.map((e) => el("li", {},
    el("span", { class: "when", text: fmtTime(e.at) }),
    `${e.actor_kind === "service" ? "智能客服" : e.actor_name || "系统"} ${ACTIONS[e.action] || e.action}`,
    e.action === "callback" && e.data && e.data.satisfaction ? `（${e.data.satisfaction}分${ANSWERS[e.data.result] ? "，" + ANSWERS[e.data.result] : ""}）` : "",
    e.action === "assign" && e.data && e.data.assignee_name ? ` → ${e.data.assignee_name}` : "",
    e.note ? `：${e.note}` : "")));
  clear($("t-attachments"), ...(t.attachments.length ? t.attachments.map((a) => el("li", { text: `${a.kind} ${a.uri}` })) : [el("li", { class: "meta", text: "无" })]));
  renderTicketActions(t, keepAction);
  tickCountdown();
}

function renderTicketActions(t, keep) {
  $("t-error").textContent = "";
  clear($("t-actions"), ...t.allowed_actions.map((a) => el("button", { type: "button", dataset: { action: a },
    onclick: () => chooseAction(a) }, ACTIONS[a] || a)));
  if (!t.allowed_actions.length) $("t-actions").append(el("span", { class: "meta", text: "当前没有可执行的操作" }));
  if (keep && t.allowed_actions.includes(keep)) chooseAction(keep); else { S.pendingAction = null; clear($("t-action-inputs")); }
}

function noteInput(required, label = "说明") {
  return el("label", {}, `${label}${required ? "（必填）" : ""}`, el("textarea", { id: "a-note", rows: 2, maxlength: 4000, required }));
}

async function chooseAction(action) {
  S.pendingAction = action;
  const t = S.ticket;
  const box = $("t-action-inputs");
  const parts = [];
  if (action === "assign") {
    const select = el("select", { id: "a-assignee", required: true }, el("option", { value: "", text: "选择责任人" }));
    try {
      const people = await api("GET", `/api/assignees?department=${encodeURIComponent(t.department)}`);
      for (const p of people.items) select.append(el("option", { value: p.username, text: `${p.display_name}（${ROLE_NAMES[p.role] || p.role}）` }));
    } catch (err) { toast(err.message, true); }
    parts.push(el("label", {}, "责任人 ", select), noteInput(false));
  } else if (action === "callback") {
    parts.push(el("label", {}, "是否联系上居民 ", el("select", { id: "a-reached" },
      el("option", { value: "true", text: "已联系上" }), el("option", { value: "false", text: "未联系上" }))),
    el("label", {}, "满意度 ", el("select", { id: "a-satisfaction" }, el("option", { value: "", text: "未评价" }),
      ...[5, 4, 3, 2, 1].map((n) => el("option", { value: n, text: `${n}分` })))), noteInput(false, "回访记录"));
  } else if (action === "request_extension") {
    parts.push(el("label", {}, "延至 ", el("input", { id: "a-due-at", type: "datetime-local", required: true })),
      noteInput(true, "延期原因"));
  } else if (action === "reroute") {
    const cat = el("select", { id: "a-category" });
    const bt = el("select", { id: "a-business-type" });
    fillSelect(cat, S.meta.categories, t.category);
    fillSelect(bt, businessTypesOf(t.category), t.business_type);
    cat.addEventListener("change", () => fillSelect(bt, businessTypesOf(cat.value), "", "按类别默认"));
    parts.push(el("label", {}, "类别 ", cat), el("label", {}, "业务类型 ", bt), noteInput(false, "转派原因"));
  } else {
    parts.push(noteInput(["resolve", "reopen", "comment", "return"].includes(action),
      { resolve: "办理结果", return: "退单原因" }[action] || "说明"));
  }
  parts.push(el("button", { type: "submit", id: "a-submit", class: "primary", text: `确认${ACTIONS[action] || action}` }));
  clear(box, ...parts);
}

$("t-action-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const action = S.pendingAction;
  if (!action) return;
  const value = (id) => { const e = $(id); return e ? e.value : ""; };
  const body = { note: value("a-note") };
  if (action === "assign") body.assignee = value("a-assignee");
  if (action === "callback") {
    body.reached = value("a-reached") === "true";
    if (value("a-satisfaction")) body.satisfaction = Number(value("a-satisfaction"));
  }
  if (action === "request_extension" && value("a-due-at")) body.due_at = value("a-due-at");  // the utility's local time, read as such by the API
  if (action === "reroute") {
    body.category = value("a-category");
    if (value("a-business-type")) body.business_type = value("a-business-type");
  }
  const path = action === "comment" ? "comments" : action;
  const payload = action === "comment" ? { note: body.note } : body;
  try {
    await api("POST", `/api/tickets/${encodeURIComponent(S.ticket.number)}/${path}`, payload);
    S.pendingAction = null;
    await openTicket(S.ticket.number, true);
    toast(DONE[action] || `已${ACTIONS[action] || action}`);
  } catch (err) {
    $("t-error").textContent = err.message;
  }
});

function tickCountdown() {
  const t = S.ticket;
  const box = $("t-countdown");
  if (!t || $("ticket").hidden) return;
  const open = ["new", "assigned", "in_progress"].includes(t.status);
  if (!open) {
    box.className = "countdown";
    box.textContent = t.resolved_at ? `已于 ${fmtTime(t.resolved_at)} 办结` : "";
    return;
  }
  const left = new Date(t.resolution_due_at).getTime() - Date.now();
  box.className = left < 0 ? "countdown overdue" : "countdown";
  box.textContent = left < 0 ? `已超过办结时限 ${fmtSpan(-left)}` : `距办结时限还有 ${fmtSpan(left)}`;
  if (t.on_site_due_at && !t.arrived_at) {  // repairs: the crew's arrival has its own limit
    const site = new Date(t.on_site_due_at).getTime() - Date.now();
    if (site < 0) box.className = "countdown overdue";
    box.textContent += site < 0 ? `；已超过到场时限 ${fmtSpan(-site)}` : `；距到场时限还有 ${fmtSpan(site)}`;
  }
}

// ---- calls and notices -----------------------------------------------------------------

// Outbound calls (外呼: callback surveys, outage notices) share the list with the IVR's inbound calls.
const CALL_PURPOSES = { callback: "回访", outage_notice: "停水通知" };
const OUTBOUND_OUTCOMES = { answered: "已接听", busy: "忙线", no_answer: "无人接听", rejected: "拒接",
  invalid_number: "空号", failed: "失败" };
const callParty = (c) => c.direction === "outbound" ? `外呼→${c.callee}（${CALL_PURPOSES[c.purpose] || "外呼"}）` : c.caller;
const callOutcome = (c) => (c.direction === "outbound" ? OUTBOUND_OUTCOMES[c.outcome] : OUTCOMES[c.outcome]) || c.outcome || "进行中";

async function loadCalls() {
  let data;
  try { data = await api("GET", "/api/calls?limit=100"); } catch (err) { toast(err.message, true); return; }
  clear($("call-rows"), ...data.items.map((c) => el("tr", { dataset: { callId: c.id } },
    el("td", { text: fmtTime(c.started_at) }), el("td", { text: callParty(c) }), el("td", { text: c.account_number || "" }),
    el("td", { text: c.ended_at ? fmtSpan(new Date(c.ended_at) - new Date(c.answered_at || c.started_at)) : "进行中" }),
    el("td", { text: (c.menu_path || []).join(" → ") }), el("td", { class: "digits", text: Array.isArray(c.digits) ? c.digits.join(" ") : c.digits || "" }), el("td", { text: callOutcome(c) }),
    el("td", {}, c.ticket_number ? el("a", { href: `#tickets/${c.ticket_number}`, text: c.ticket_number }) : ""),
    el("td", {}, c.recording_url ? el("audio", { controls: true, preload: "none", src: c.recording_url }) : ""))));
}

// ---- callback tasks (回访任务) -------------------------------------------------------

async function loadCallbacks() {
  let data;
  try { data = await api("GET", "/api/callbacks?manual=true&state=in_progress"); } catch (_) { return; }
  $("callback-count").textContent = data.items.length || "";
  if (S.view !== "callbacks") return;
  clear($("callback-rows"), ...(data.items.length ? data.items.map((c) => {
    const reached = el("select", { class: "cb-reached" }, el("option", { value: "satisfied", text: "满意" }),
      el("option", { value: "basically_satisfied", text: "基本满意" }), el("option", { value: "dissatisfied", text: "不满意" }),
      el("option", { value: "unreachable", text: "未联系上" }));
    const note = el("input", { class: "cb-note", placeholder: "回访记录", maxlength: 2000 });
    const save = el("button", { type: "button", class: "primary", text: "记录", onclick: async () => {
      const answer = reached.value;
      const body = answer === "unreachable" ? { reached: false, note: note.value } : { reached: true, answer, note: note.value };
      try {
        await api("POST", `/api/callbacks/${c.id}/result`, body);
        toast(`工单 ${c.ticket} 回访已记录：${ANSWERS[answer]}`);
        loadCallbacks();
      } catch (err) { toast(err.message, true); }
    } });
    const tried = c.attempts.filter((a) => a.channel !== "agent").length;
    return el("tr", { dataset: { callbackId: c.id } },
      el("td", {}, el("a", { href: `#tickets/${c.ticket}`, text: c.ticket })),
      el("td", { text: (S.meta.business_types[c.business_type] || {}).name || c.business_type }),
      el("td", { text: c.contact_name || "" }), el("td", { text: c.contact_phone || "" }),
      el("td", { text: c.resolution || "" }), el("td", { text: fmtTime(c.due_at) }),
      el("td", { text: `${tried}次${c.result === "unclear" ? "（答复未能识别）" : ""}` }), el("td", { text: c.note || "" }),
      el("td", { class: "cb-record" }, reached, note, save));
  }) : [el("tr", {}, el("td", { colspan: 9, class: "meta", text: "暂无待人工回访的任务" }))]));
}

async function loadNotices() {
  let data;
  try { data = await api("GET", "/api/notifications"); } catch (_) { return; }
  $("notice-count").textContent = data.items.length || "";
  clear($("notice-list"), ...(data.items.length ? data.items.map((n) => el("li", { dataset: { noticeId: n.id } },
    el("div", { class: "row" }, el("span", { class: `tag level-${NOTICE_LEVELS[n.kind] ? NOTICE_LEVELS[n.kind][1] : "overdue"}`,
      text: NOTICE_LEVELS[n.kind] ? NOTICE_LEVELS[n.kind][0] : "督办" }), el("span", { class: "meta", text: fmtTime(n.created_at) })),
    el("div", { text: n.message }),
    el("div", { class: "actions" },
      n.ticket ? el("a", { href: `#tickets/${n.ticket}`, text: "查看工单" }) : null,
      el("button", { type: "button", text: "标记已读", onclick: async (ev) => {
        ev.stopPropagation();
        try { await api("POST", `/api/notifications/${n.id}/read`); loadNotices(); } catch (err) { toast(err.message, true); }
      } })))) : [el("li", { class: "empty", text: "没有未读的督办通知" })]));
}

setInterval(() => { tickWaits(); tickCountdown(); }, 1000);
start();
