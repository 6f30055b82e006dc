"use strict";
// 12345 in the console (docs/12345.md): a 12345 ticket's order number, its 12345 limits with the sign-for
// countdown, and each message to 12345 with its delivery state; for admins, the messages that failed for
// good, with the error and a button to send them again. Uses console.js's api, el, clear, fmtTime, toast, can.
window.Gov12345 = (() => {
  const KINDS = { sign: "签收", progress: "办理中", reply: "办结回复", extension: "延期申请", return: "退单申请" };
  const STATES = { pending: "待发送", sent: "已送达", failed: "发送失败" };
  const REQUESTS = { extension: "延期申请", return: "退单申请" };
  let shown = null;
  let timer = null;

  function span(ms) {
    const m = Math.floor(Math.abs(ms) / 60000);
    return m >= 60 ? `${Math.floor(m / 60)}小时${m % 60}分` : `${m}分钟`;
  }

  function signLine(o) {
    if (o.signed_at) return `已签收 ${fmtTime(o.signed_at)}`;
    const left = new Date(o.sign_due_at).getTime() - Date.now();
    return left < 0 ? `未签收，已超过签收时限 ${span(left)}` : `未签收，距签收时限还有 ${span(left)}`;
  }

  function render(box, o) {
    const rows = [
      ["12345工单号", o.order_no], ["诉求类型", `${o.type}${o.routed ? "" : "（未配置，待人工派单）"}`],
      ["签收时限", `${fmtTime(o.sign_due_at)}前`], ["签收", signLine(o)],
      ["12345办理时限", `${fmtTime(o.due_at)}前`],
      ["待12345审批", o.pending_request ? `${REQUESTS[o.pending_request]}：${o.pending_reason || ""}` : ""],
      ["12345催办", o.chases ? `${o.chases}次，最近 ${fmtTime(o.last_chased_at)}` : ""],
      ["12345回访", o.satisfaction || ""], ["重办", o.redispatches ? `${o.redispatches}次` : ""],
      ["状态", o.state === "returned" ? "12345已同意退单" : ""],
    ];
    const messages = o.messages.map((m) => el("tr", { class: `outbox-${m.state}`, dataset: { kind: m.kind } },
      el("td", { text: KINDS[m.kind] || m.kind }), el("td", { text: fmtTime(m.created_at) }),
      el("td", { class: "state", text: STATES[m.state] || m.state }),
      el("td", { text: m.sent_at ? fmtTime(m.sent_at) : m.attempts ? `已尝试${m.attempts}次` : "" }),
      el("td", { class: "error", text: m.last_error || "" })));
    clear(box, el("h3", { text: "12345工单" }),
      el("dl", { class: "fields", id: "g-fields" },
        ...rows.filter(([, v]) => v).flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])),
      el("table", { class: "grid", id: "g-messages" },
        el("thead", {}, el("tr", {}, ...["发给12345", "时间", "投递", "送达/尝试", "错误"].map((h) => el("th", { text: h })))),
        el("tbody", {}, ...(messages.length ? messages : [el("tr", {}, el("td", { colspan: 5, class: "meta", text: "尚无消息" }))]))));
    box.hidden = false;
  }

  async function show(t) {
    const box = document.getElementById("t-gov12345");
    clearInterval(timer);
    shown = null;
    if (!box) return;
    if (!t || t.channel !== "gov12345") { box.hidden = true; clear(box); return; }
    let o;
    try { o = await api("GET", `/api/gov12345/tickets/${encodeURIComponent(t.number)}`); } catch (_) { box.hidden = true; return; }
    shown = t.number;
    render(box, o);
    if (!o.signed_at) timer = setInterval(() => { if (shown === t.number) render(box, o); }, 30000);
  }

  async function failed() {
    const box = document.getElementById("gov12345-failed");
    if (!box || !can("admin")) return;
    let data;
    try { data = await api("GET", "/api/integrations/outbox/failed"); } catch (_) { return; }
    if (!data.items.length) { box.hidden = true; clear(box); return; }
    clear(box, el("h3", { text: `12345消息投递失败（${data.items.length}）` }),
      el("table", { class: "grid" }, el("tbody", {}, ...data.items.map((m) => el("tr", { dataset: { messageId: m.id } },
        el("td", {}, m.ticket ? el("a", { href: `#tickets/${m.ticket}`, text: m.ticket }) : m.key),
        el("td", { text: KINDS[m.kind] || m.kind }), el("td", { class: "error", text: m.last_error || "" }),
        el("td", {}, el("button", { type: "button", text: "重新发送", onclick: async () => {
          try { await api("POST", `/api/integrations/outbox/${m.id}/retry`); toast("已重新发送"); failed(); }
          catch (err) { toast(err.message, true); }
        } })))))));
    box.hidden = false;
  }

  function onEvent(evt) {
    if (evt.type === "outbox.changed" || evt.type === "outbox.queued") {
      if (can("admin")) failed();
      if (shown && S.ticket && S.ticket.number === shown) show(S.ticket);
    }
  }

  return { show, failed, onEvent };
})();
