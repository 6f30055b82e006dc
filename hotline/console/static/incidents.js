// 事件与停水: the incidents view of the console. Suspected incidents to confirm or dismiss, active ones to
// end, outages to publish, extend and end, and public-opinion alerts to acknowledge. Plain JavaScript on
// /api/incidents, /api/outages and /api/alerts; every value from the server goes on the page as text.
"use strict";

(function () {
  // discard: the drafts just sent and accepted; the next render leaves those fields empty.
  // zone: the utility's time zone (from /api/areas), which every time box here is in, whatever the browser's.
  const I = { ctx: null, discard: new Set(), zone: { timezone: "Asia/Shanghai", utc_offset: "+08:00" } };
  const $ = (id) => document.getElementById(id);

  function el(tag, props = {}, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids) if (kid !== null && kid !== undefined && kid !== false) e.append(kid);
    return e;
  }

  const STATUS = { suspected: "疑似", active: "处置中", dismissed: "已排除", ended: "已恢复" };
  // A time box's value as typed ("2026-09-24T18:30"), without an offset: the server reads it in the utility's
  // zone. (new Date(value) would read it in the browser's zone: 18:30 typed in a UTC browser became 02:30.)
  const typed = (value) => value || null;
  const shown = (value) => (value || "").replace("T", " ");
  const zoneLabel = () => `${I.zone.timezone === "Asia/Shanghai" ? "北京时间" : I.zone.timezone}（UTC${I.zone.utc_offset}）`;
  const zoneNote = (id) => el("span", { class: "meta zone", id, text: zoneLabel() });
  const can = (...roles) => roles.includes(I.ctx.me.role);

  async function act(method, path, body, done, sentDrafts = []) {
    try {
      await I.ctx.api(method, path, body);
      I.ctx.toast(done);
      // What was sent is no longer a draft. Cleared by key on the render that follows, not on these
      // elements: a live refresh during the request may have replaced them already.
      for (const key of sentDrafts) I.discard.add(key);
      await load();
    } catch (err) { I.ctx.toast(err.message, true); }
  }

  function incidentItem(inc) {
    const head = el("div", { class: "row" }, el("span", { class: `tag ${inc.status === "suspected" ? "bad" : ""}`,
      text: STATUS[inc.status] }), el("strong", { text: ` ${inc.title}` }),
      el("span", { class: "meta", text: ` 报告 ${inc.reports.length} 条 · 发现于 ${I.ctx.fmtTime(inc.detected_at)}` }));
    const reports = el("div", { class: "meta reports" }, ...inc.reports.map((n) =>
      el("a", { href: `#tickets/${n}`, text: n, class: "report-link" })));
    const box = el("li", { class: "incident", "data-incident-id": inc.id }, head, reports);
    if (inc.status === "active") {
      box.append(el("div", { class: "meta", text: `${inc.text} 预计恢复：${I.ctx.fmtTime(inc.expected_restore_at)}` }));
    }
    if (!can("supervisor", "admin")) return box;
    if (inc.status === "suspected") {
      const restore = el("input", { type: "datetime-local", class: "i-restore", required: true, "data-draft": `i${inc.id}-restore` });
      const text = el("textarea", { class: "i-text", rows: 2, maxlength: 2000, placeholder: "告知居民：原因与抢修情况",
        "data-draft": `i${inc.id}-text` });
      box.append(el("div", { class: "actions" }, el("label", {}, "预计恢复 ", restore, " ", zoneNote()), text,
        el("button", { type: "button", class: "primary i-confirm", text: "确认事件",
          onclick: () => act("POST", `/api/incidents/${inc.id}/confirm`,
            { expected_restore_at: typed(restore.value), text: text.value }, "已确认，已告知报修居民") }),
        el("button", { type: "button", class: "i-dismiss", text: "排除",
          onclick: () => act("POST", `/api/incidents/${inc.id}/dismiss`, { note: "" }, "已排除") })));
    } else if (inc.status === "active") {
      const note = el("textarea", { class: "i-resolution", rows: 2, maxlength: 2000, placeholder: "处理结果（将告知每位报修居民）",
        "data-draft": `i${inc.id}-resolution` });
      box.append(el("div", { class: "actions" }, note,
        el("button", { type: "button", class: "primary i-end", text: "恢复办结",
          onclick: () => act("POST", `/api/incidents/${inc.id}/end`, { resolution: note.value },
            "已办结，相关工单已办结并安排回访") })));
    }
    return box;
  }

  function outageItem(o) {
    const until = el("input", { type: "datetime-local", class: "o-until", "data-draft": `o${o.id}-until` });
    return el("li", { class: "outage", "data-outage-id": o.id },
      el("div", { class: "row" }, el("span", { class: "tag", text: o.planned ? "计划停水" : "抢修停水" }),
        el("strong", { text: ` ${o.title}` }), el("span", { class: "meta", text: ` ${o.areas.join("、")}` })),
      el("div", { class: "meta", text: `${I.ctx.fmtTime(o.starts_at)} 至 ${I.ctx.fmtTime(o.ends_at)} ${o.detail || ""}` }),
      el("div", { class: "actions" }, el("label", {}, "延至 ", until, " ", zoneNote()),
        el("button", { type: "button", text: "延长", onclick: () => act("PATCH", `/api/outages/${o.id}`,
          { ends_at: typed(until.value) }, "已延长并通知居民", [`o${o.id}-until`]) }),
        el("button", { type: "button", text: "结束停水", onclick: () => act("POST", `/api/outages/${o.id}/end`,
          { note: "" }, "已结束并通知居民") })));
  }

  function alertItem(a) {
    return el("li", { class: "alert", "data-alert-id": a.id },
      el("div", { class: "row" }, el("span", { class: "tag bad", text: "舆情" }),
        el("strong", { text: ` ${a.words.join("、")}` }), el("span", { class: "meta", text: ` ${I.ctx.fmtTime(a.created_at)}` })),
      el("div", { text: a.excerpt }),
      el("div", { class: "actions" },
        a.conversation_id ? el("a", { href: `#queue/${a.conversation_id}`, text: "查看会话" }) : null,
        a.ticket ? el("a", { href: `#tickets/${a.ticket}`, text: `工单 ${a.ticket}` }) : null,
        can("supervisor", "admin") ? el("button", { type: "button", class: "a-ack", text: "已知悉",
          onclick: () => act("POST", `/api/alerts/${a.id}/acknowledge`, { note: "" }, "已确认") }) : null));
  }

  async function publishForm() {
    let areas = [];
    try {
      const known = await I.ctx.api("GET", "/api/areas");
      areas = known.items;
      if (known.timezone) I.zone = { timezone: known.timezone, utc_offset: known.utc_offset };
    } catch (_) { /* keep the form usable */ }
    const pick = el("select", { id: "o-areas", "data-draft": "o-areas", multiple: true, size: Math.min(6, areas.length || 1) },
      ...areas.map((a) => el("option", { value: a, text: a })));
    const form = el("form", { id: "outage-form", class: "ticket-form" },
      el("h3", { text: "发布停水通知" }), el("label", {}, "区域（可多选） ", pick),
      el("label", {}, "标题 ", el("input", { id: "o-title", "data-draft": "o-title", maxlength: 200, required: true })),
      el("label", {}, "说明 ", el("textarea", { id: "o-detail", "data-draft": "o-detail", rows: 2, maxlength: 2000 })),
      // Not ticked by default: a planned outage is announced as such, so the dispatcher says so on purpose.
      el("label", {}, el("input", { id: "o-planned", "data-draft": "o-planned", type: "checkbox" }), " 计划停水"),
      el("label", {}, "开始 ", el("input", { id: "o-start", "data-draft": "o-start", type: "datetime-local", required: true })),
      el("label", {}, "预计恢复 ", el("input", { id: "o-end", "data-draft": "o-end", type: "datetime-local", required: true })),
      el("p", { class: "meta" }, "时间均为", zoneNote("o-zone"), "，与浏览器所在时区无关"),
      el("button", { type: "submit", class: "primary", text: "发布并通知居民" }));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const body = {
        areas: [...pick.selectedOptions].map((o) => o.value), title: $("o-title").value, detail: $("o-detail").value,
        planned: $("o-planned").checked, starts_at: typed($("o-start").value), ends_at: typed($("o-end").value),
      };
      // Publishing tells every bound resident of the areas at once: the dispatcher reads it back first.
      const question = `将向${body.areas.join("、") || "（未选区域）"}的居民发布${body.planned ? "计划停水" : "抢修停水"}通知：\n`
        + `${body.title}\n${shown(body.starts_at)} 至 ${shown(body.ends_at)}（${zoneLabel()}）\n确定发布并通知居民吗？`;
      if (!window.confirm(question)) return;
      act("POST", "/api/outages", body, "已发布停水通知", ["o-areas", "o-title", "o-detail", "o-planned", "o-start", "o-end"]);
    });
    return form;
  }

  // Live events re-render the view while a supervisor may be typing: what is typed (and where the cursor is)
  // survives the re-render, keyed by data-draft; a slower, older load never replaces a newer one.
  function drafts(root) {
    const kept = new Map();
    for (const f of root.querySelectorAll("[data-draft]")) {
      if (f.type === "checkbox") kept.set(f.dataset.draft, f.checked);
      else if (f.multiple) kept.set(f.dataset.draft, [...f.selectedOptions].map((o) => o.value));
      else kept.set(f.dataset.draft, f.value);
    }
    const focused = document.activeElement && root.contains(document.activeElement)
      ? document.activeElement.dataset.draft : null;
    return { kept, focused };
  }

  function restoreDrafts(root, { kept, focused }) {
    for (const f of root.querySelectorAll("[data-draft]")) {
      if (!kept.has(f.dataset.draft) || I.discard.has(f.dataset.draft)) continue;
      const v = kept.get(f.dataset.draft);
      if (f.type === "checkbox") f.checked = v;
      else if (f.multiple) for (const o of f.options) o.selected = v.includes(o.value);
      else f.value = v;
      if (f.dataset.draft === focused) f.focus();
    }
  }

  let loads = 0;
  async function load() {
    const mine = ++loads;
    const view = $("incidents-view");
    const [suspected, active, outages, alerts] = await Promise.all([
      I.ctx.api("GET", "/api/incidents?status=suspected"), I.ctx.api("GET", "/api/incidents?status=active"),
      I.ctx.api("GET", "/api/outages"),
      can("supervisor", "admin", "agent") ? I.ctx.api("GET", "/api/alerts") : Promise.resolve({ items: [] }),
    ].map((p) => p.catch(() => ({ items: [] }))));
    const incidents = [...suspected.items, ...active.items];
    const form = await publishForm();
    if (mine !== loads) return;
    const typed = drafts(view);
    view.replaceChildren(
      el("h3", { text: "事件" }),
      el("ul", { id: "incident-list", class: "items" }, ...(incidents.length ? incidents.map(incidentItem)
        : [el("li", { class: "meta", text: "暂无疑似或处置中的事件" })])),
      el("h3", { text: "停水通知" }),
      el("ul", { id: "outage-list", class: "items" }, ...(outages.items.length ? outages.items.map(outageItem)
        : [el("li", { class: "meta", text: "暂无停水" })])),
      form,
      el("h3", { text: "舆情预警" }),
      el("ul", { id: "alert-list", class: "items" }, ...(alerts.items.length ? alerts.items.map(alertItem)
        : [el("li", { class: "meta", text: "暂无未处理的预警" })])));
    restoreDrafts(view, typed);
    I.discard.clear();
  }

  window.HotlineIncidents = {
    show(ctx) { I.ctx = ctx; return load(); },
    refresh() { if (I.ctx && !$("incidents-view").hidden) load(); },
  };
})();
