// 查阅记录 (the read audit) for admins: who looked at which resident's data, when, and where; and the
// 显示全名 control beside a masked name, which asks for a reason that is recorded with the read.
// Loaded after console.js and built on its helpers (S, $, el, clear, api, toast, fmtTime, can); every value
// goes on the page as text.
"use strict";

window.HotlineAudit = (() => {
  const ROLES = { agent: "坐席", supervisor: "主管", department: "部门人员", admin: "管理员", service: "智能客服接口",
    system: "系统" };
  const WHERE = {
    "GET /api/customers": "查找户号", "GET /api/customers/{account_number}": "查看户号",
    "GET /api/customers/{account_number}/balance": "查看余额与账单", "POST /api/customers/{account_number}/reveal": "显示全名",
    "GET /api/conversations/{id}/context": "会话居民信息", "GET /api/residents/context": "按户号/电话查看居民信息",
    "GET /api/search": "搜索", "GET /api/conversations/{id}": "查看会话", "GET /api/conversations": "查找会话",
    "GET /api/calls": "通话记录", "GET /api/calls/{id}/recording": "收听录音", "GET /api/tickets/{number}": "查看工单",
    "GET /api/tickets": "查找工单",
  };
  const A = { before: null };

  // ---- 显示全名 ---------------------------------------------------------------------------------------

  function revealControl(accountNumber) {
    if (!can("agent", "supervisor", "admin")) return null;
    const box = el("span", { class: "reveal" });
    const button = el("button", { type: "button", class: "reveal-name", text: "显示全名",
      title: "查看居民全名需填写原因，将记入查阅记录" });
    button.addEventListener("click", async () => {
      const reason = (prompt("请填写查看全名的原因（将记入查阅记录）") || "").trim();
      if (!reason) return;
      if (reason.length < 2) { toast("原因至少两个字", true); return; }
      try {
        const d = await api("POST", `/api/customers/${encodeURIComponent(accountNumber)}/reveal`, { reason });
        clear(box, el("strong", { class: "full-name", text: d.name }));
      } catch (err) { toast(err.message, true); }
    });
    box.append(button);
    return box;
  }

  // ---- 查阅记录 ---------------------------------------------------------------------------------------

  function form() {
    const f = el("form", { id: "audit-filters", class: "filters" },
      el("input", { id: "au-account", placeholder: "户号", maxlength: 32 }),
      el("input", { id: "au-phone", placeholder: "电话", maxlength: 32 }),
      el("input", { id: "au-staff", placeholder: "工作人员用户名", maxlength: 64 }),
      el("label", {}, "从 ", el("input", { id: "au-from", type: "date" })),
      el("label", {}, "到 ", el("input", { id: "au-to", type: "date" })),
      el("button", { type: "submit", text: "查询" }));
    f.addEventListener("submit", (ev) => { ev.preventDefault(); load(false); });
    return f;
  }

  function query(more) {
    const q = new URLSearchParams();
    for (const [key, id] of [["account", "au-account"], ["phone", "au-phone"], ["staff", "au-staff"], ["from", "au-from"], ["to", "au-to"]]) {
      const v = $(id).value.trim();
      if (v) q.set(key, v);
    }
    if (more && A.before) q.set("before_id", A.before);
    return q;
  }

  function whom(r) {
    return [r.account_number ? `户号 ${r.account_number}` : "", r.phone ? `电话 ${r.phone}` : "", r.openid ? "微信用户" : "",
      r.conversation_id ? `会话 #${r.conversation_id}` : "", r.call_id ? `通话 #${r.call_id}` : "",
      r.ticket_number ? `工单 ${r.ticket_number}` : ""].filter(Boolean).join(" · ");
  }

  async function load(more) {
    let d;
    try { d = await api("GET", `/api/audit/reads?${query(more)}`); } catch (err) { toast(err.message, true); return; }
    A.before = d.next_before_id;
    const rows = d.items.map((r) => el("tr", {},
      el("td", { text: fmtTime(r.at) }), el("td", { text: r.staff_name + (r.staff ? `（${r.staff}）` : "") }),
      el("td", { text: ROLES[r.role] || r.role }), el("td", { text: WHERE[r.endpoint] || r.endpoint, title: r.endpoint }),
      el("td", { text: whom(r) }), el("td", { text: String(r.hits) }), el("td", { text: r.reason || "" })));
    const body = $("audit-rows");
    if (more) body.append(...rows);
    else clear(body, ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 7, class: "meta", text: "没有符合条件的查阅记录" }))]));
    $("audit-more").hidden = !A.before;
  }

  function show() {
    const view = $("audit-view");
    if (!$("audit-filters")) {
      const more = el("button", { id: "audit-more", type: "button", text: "更多", hidden: true });
      more.addEventListener("click", () => load(true));
      clear(view, el("p", { class: "meta", text: "工作人员查看居民个人信息（户号、余额账单、会话、通话与录音、工单联系人、搜索结果、全名）的记录。" }),
        form(), el("table", { class: "grid" }, el("thead", {}, el("tr", {}, ...["时间", "工作人员", "角色", "查看内容", "居民", "条数", "原因"]
          .map((h) => el("th", { text: h })))), el("tbody", { id: "audit-rows" })), more);
    }
    load(false);
  }

  return { show, revealControl };
})();
