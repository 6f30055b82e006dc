// A whole shift in the console: the resident beside the conversation, the conversation history, one
// search box, presence (在线/忙碌/离开), sound + desktop notifications + a count in the tab title,
// whispers, reassigning, the supervisors' overview and canned replies (快捷回复, typed with /).
// Loaded after console.js and built on its helpers (S, $, el, clear, api, toast, fmtTime, fmtSpan, later);
// every value goes on the page as text.
"use strict";

window.HotlineShift = (() => {
  const SH = {
    context: null, contextFor: null, canned: [], agents: null, presence: "away", unread: new Set(),
    baseTitle: document.title, historyBefore: null, menu: [], menuIndex: 0, audio: null,
  };
  const PRESENCE = { online: "在线", busy: "忙碌", away: "离开" };
  const MATCHED = { confirmed: "智能客服识别的户号", bound: "微信已绑定户号", account: "按居民提供的户号匹配", phone: "按电话号码匹配",
    ticket: "按关联工单的户号匹配" };
  // How the resident proved the account is theirs (hotline/customers/verification.py); nothing: 户号未核实.
  const VERIFIED = { binding: "微信绑定", caller_number: "来电号码为登记电话", phone_digits: "报对登记电话后四位",
    holder_name: "报对户主姓名" };
  const isAgentish = () => can("agent", "supervisor", "admin");

  // ---- presence ------------------------------------------------------------------------------------

  async function loadPresence() {
    if (!isAgentish()) return;
    try { setPresence((await api("GET", "/api/presence")).status); } catch (_) { /* signed out */ }
  }

  function setPresence(status) {
    SH.presence = status;
    $("presence").value = status;
    $("presence").className = `presence ${status}`;
  }

  $("presence").addEventListener("change", async () => {
    const status = $("presence").value;
    askPermissionOnce();
    try {
      setPresence((await api("PUT", "/api/presence", { status })).status);
      toast(status === "online" ? "已切换为在线：系统将为您分配等待中的会话" : `已切换为${PRESENCE[status]}：不再为您分配新会话`);
      later("queue", loadQueue);
    } catch (err) { toast(err.message, true); loadPresence(); }
  });

  // ---- notifications: sound, the desktop, the tab title -------------------------------------------

  function askPermissionOnce() {  // asked once per browser, on the agent's own click
    if (!("Notification" in window) || Notification.permission !== "default") return;
    if (localStorage.getItem("hotline.notifications.asked")) return;
    localStorage.setItem("hotline.notifications.asked", "1");
    Notification.requestPermission().catch(() => {});
  }
  document.addEventListener("pointerdown", askPermissionOnce, { once: true });

  function beep() {
    try {
      SH.audio = SH.audio || new AudioContext();
      const osc = SH.audio.createOscillator(), gain = SH.audio.createGain();
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.15, SH.audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, SH.audio.currentTime + 0.4);
      osc.connect(gain).connect(SH.audio.destination);
      osc.start();
      osc.stop(SH.audio.currentTime + 0.4);
    } catch (_) { /* no audio device: the desktop notice and the title still tell */ }
  }

  function alertAgent(title, body, tag, hash) {
    if (SH.presence === "busy") return;  // 忙碌: nothing new is pushed at them
    beep();
    window.hotlineAlerts = (window.hotlineAlerts || 0) + 1;
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    try {
      const n = new Notification(title, { body, tag, lang: "zh-CN", icon: "/console/static/favicon.svg" });
      n.onclick = () => { window.focus(); if (hash) location.hash = hash; n.close(); };
    } catch (_) { /* e.g. a browser that only notifies from a service worker */ }
  }

  function updateTitle() {
    const waiting = isAgentish() ? (S.queue.waiting || []).length : 0;
    const count = waiting + SH.unread.size;
    document.title = count ? `(${count}) ${SH.baseTitle}` : SH.baseTitle;
  }

  function mine(conversationId) {
    return (S.queue.active || []).some((c) => c.id === conversationId && c.agent_id === S.me.id);
  }

  // ---- live events ---------------------------------------------------------------------------------

  function onEvent(evt) {
    const type = evt.type || "";
    if (!S.me) return;
    if (type === "conversation.waiting" && isAgentish()) {
      alertAgent("新的会话等待人工接待", `${CHANNELS[evt.channel] || ""}居民正在等待`, `waiting-${evt.conversation_id}`,
        `queue/${evt.conversation_id}`);
    }
    if (type === "conversation.reassigned") {
      later("queue", loadQueue);
      if (evt.agent_id === S.me.id && evt.from_agent_id !== S.me.id) {
        const looking = evt.conversation_id === S.convId && S.view === "queue" && document.hasFocus();
        if (!looking) SH.unread.add(evt.conversation_id);  // the tab's count: a conversation now theirs, unread
        alertAgent("新会话已分配给您", `${CHANNELS[evt.channel] || ""}会话 #${evt.conversation_id}`, `assigned-${evt.conversation_id}`,
          `queue/${evt.conversation_id}`);
      }
      if (evt.conversation_id === S.convId) later("conv", () => openConversation(S.convId, true));
    }
    if (type === "conversation.message" && evt.message) {
      const m = evt.message;
      const looking = evt.conversation_id === S.convId && S.view === "queue" && document.hasFocus();
      if (m.direction === "in" && mine(evt.conversation_id) && !looking) {
        SH.unread.add(evt.conversation_id);
        alertAgent("居民发来新消息", m.text || "", `message-${evt.conversation_id}`, `queue/${evt.conversation_id}`);
      }
    }
    if (type === "conversation.whisper" && evt.conversation_id === S.convId) appendWhisper(evt.whisper);
    if (type === "conversation.whisper" && evt.agent_id === S.me.id && evt.whisper.by_id !== S.me.id) {
      alertAgent("主管给您发来内部备注", evt.whisper.text, `whisper-${evt.whisper.id}`, `queue/${evt.conversation_id}`);
      if (evt.conversation_id !== S.convId) toast(`内部备注（会话 #${evt.conversation_id}）：${evt.whisper.text}`);
    }
    if (type === "presence.changed" && evt.staff_id === S.me.id) setPresence(evt.status);
    if (type === "canned.changed") loadCanned();
    if ((type.startsWith("conversation.") || type === "presence.changed" || type === "ticket.changed") && S.view === "supervise") {
      later("supervise", loadSupervise, 300);
    }
    if (type === "ticket.changed" && S.contextFor && S.view === "queue") later("context", () => loadContext(S.contextFor), 300);
    updateTitle();
  }

  // ---- the conversation page: context, whispers, reassign ------------------------------------------

  function conversationOpened(conv, quiet) {
    SH.unread.delete(conv.id);
    updateTitle();
    for (const w of conv.whispers || []) appendWhisper(w);
    const open = conv.status !== "closed";
    $("whisper-form").hidden = !open;
    const supervising = can("supervisor", "admin") && ["waiting", "agent", "bot"].includes(conv.status);
    $("reassign-box").hidden = !supervising;
    if (supervising) fillAgents();
    const hint = $("reply-hint");
    hint.hidden = !(conv.status === "agent" && conv.agent_id !== S.me.id);
    hint.textContent = hint.hidden ? "" : `该会话由${conv.agent_name || "其他坐席"}接待：您可以发内部备注（居民看不到），或用“转派会话”转给自己后再回复。`;
    if (!quiet || SH.contextFor !== conv.id) loadContext(conv.id);
  }

  function appendWhisper(w) {
    const list = $("transcript");
    if (!w || list.querySelector(`li[data-whisper-id="${Number(w.id)}"]`)) return;
    placeByTime(list, el("li", { class: "whisper", dataset: { whisperId: w.id } },
      el("span", { class: "who", text: `内部备注 · ${w.by} · ${fmtTime(w.at)}（居民看不到）` }), w.text), w.at);
  }

  $("whisper-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("whisper-text").value.trim();
    if (!text || !S.convId) return;
    try {
      const w = await api("POST", `/api/conversations/${S.convId}/whisper`, { text });
      $("whisper-text").value = "";
      appendWhisper(w);
    } catch (err) { toast(err.message, true); }
  });

  async function fillAgents(force = false) {
    if (SH.agents && !force) return renderAgentSelect();
    try { SH.agents = (await api("GET", "/api/supervision/overview")).agents; } catch (_) { SH.agents = []; }
    renderAgentSelect();
  }

  function renderAgentSelect() {
    const select = $("reassign-agent");
    const current = S.conv && S.conv.agent_id;
    clear(select, el("option", { value: "", text: "选择坐席" }), ...SH.agents.map((a) => el("option", { value: a.username,
      text: `${a.display_name}（${PRESENCE[a.presence]}，${a.open_conversations}个会话）${a.username === S.me.username ? " · 我" : ""}`,
      disabled: current && a.display_name === S.conv.agent_name })));
  }

  $("reassign-send").addEventListener("click", async () => {
    const agent = $("reassign-agent").value;
    if (!agent) return;
    if (await conversationAction("reassign", { agent })) toast("会话已转派");
    fillAgents(true);
  });

  // ---- the resident beside the conversation ---------------------------------------------------------

  async function loadContext(convId, lookup) {
    const box = $("context");
    box.hidden = false;
    SH.contextFor = convId;
    let data;
    try {
      data = lookup ? await api("GET", `/api/residents/context?${new URLSearchParams(lookup)}`)
        : await api("GET", `/api/conversations/${convId}/context`);
    } catch (err) { clear(box, el("p", { class: "error", text: err.message })); return; }
    if (SH.contextFor !== convId) return;
    SH.context = data;
    renderContext(box, data);
  }

  function section(title, ...kids) { return el("section", { class: "ctx-section" }, el("h3", { text: title }), ...kids); }

  function fields(rows) {
    return el("dl", { class: "fields compact" }, ...rows.filter(([, v]) => v !== null && v !== undefined && v !== "")
      .flatMap(([k, v, cls]) => [el("dt", { text: k }), el("dd", { class: cls || null, text: String(v) })]));
  }

  function ticketItem(t) {
    return el("li", { class: t.overdue ? "overdue" : "" }, el("a", { href: `#tickets/${t.number}`, text: t.number }),
      ` ${(S.meta.business_types[t.business_type] || {}).name || t.business_type} · ${t.status_label}`,
      el("div", { class: "meta", text: `${fmtTime(t.created_at)} ${t.department_name || ""}${t.assignee_name ? " · " + t.assignee_name : ""}${t.overdue ? " · 已超时" : ""}` }));
  }

  function renderContext(box, d) {
    const parts = [el("h2", { text: "居民信息" })];
    const c = d.customer;
    if (c) {
      parts.push(section("账户", fields([["户号", c.account_number], ["户名", c.name], ["地址", c.address], ["片区", c.area],
        ["电话", c.phones.join("、")], ["水表", `${c.meter.model} DN${c.meter.size_dn} · ${c.meter.serial}`],
        ["状态", c.status === "active" ? "正常用水" : c.status]]),
      window.HotlineAudit?.revealControl(c.account_number),  // 显示全名, for a recorded reason
      el("p", { class: "meta", text: MATCHED[d.matched_by] || "" }),
      el("p", { class: d.verified_by ? "meta verified" : "meta unverified", dataset: { verified: d.verified_by || "" },
        text: d.verified_by ? `智能客服已核实户号（${VERIFIED[d.verified_by] || d.verified_by}）` : "户号未核实" }),
      (d.bound_accounts || []).length ? el("p", { class: "meta bound", text: `微信绑定：${d.bound_accounts
        .map((a) => `${a.account_number}（${a.name}）`).join("、")}` }) : null));
      const b = d.balance;
      if (b) {
        parts.push(section("余额与欠费", fields([["余额", `${b.balance} 元`], ["欠费", `${b.arrears} 元${b.overdue_bills ? `（${b.overdue_bills}期逾期）` : ""}`, b.arrears_fen > 0 ? "bad" : ""],
          ["未到期", `${b.outstanding} 元`]])));
      }
    } else {
      const form = el("form", { class: "inline ctx-lookup" },
        el("input", { name: "q", placeholder: "输入户号或电话查找", maxlength: 32 }), el("button", { type: "submit", text: "查找" }));
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const q = form.elements.q.value.trim();
        if (q) loadContext(SH.contextFor, /^\d{10}$/.test(q) && q.startsWith("3") ? { account: q } : { phone: q });
      });
      parts.push(section("账户", el("p", { class: "meta", text: d.phone ? `未找到电话 ${d.phone} 对应的户号` : "未识别到居民户号" }), form));
    }
    if (d.outages.length) {
      parts.push(section("所在片区停水", ...d.outages.map((o) => el("div", { class: "outage" },
        el("strong", { text: o.title }), el("div", { class: "meta", text: `${o.area} · ${fmtTime(o.starts_at)} 至 ${fmtTime(o.ends_at)}${o.planned ? "（计划停水）" : "（抢修停水）"}` }),
        o.detail ? el("div", { text: o.detail }) : null))));
    }
    parts.push(section(`未办结工单（${d.open_tickets.length}）`, d.open_tickets.length
      ? el("ul", { class: "ctx-list" }, ...d.open_tickets.map(ticketItem)) : el("p", { class: "meta", text: "无" })));
    if (d.past_tickets.length) parts.push(section("历史工单", el("ul", { class: "ctx-list" }, ...d.past_tickets.map(ticketItem))));
    if ((d.other_tickets || []).length) {  // linked here, but not this account's (another address or phone)
      parts.push(section("本会话的其他工单", el("ul", { class: "ctx-list other-tickets" }, ...d.other_tickets.map(ticketItem))));
    }
    parts.push(section("历史会话", d.conversations.length ? el("ul", { class: "ctx-list" }, ...d.conversations.map((v) => el("li", {},
      el("a", { href: `#queue/${v.id}`, text: `${CHANNELS[v.channel] || v.channel}会话 #${v.id}` }),
      el("div", { class: "meta", text: `${fmtTime(v.created_at)} · ${CONV_STATUS[v.status] || v.status}${v.agent_name ? " · " + v.agent_name : ""}${v.satisfaction ? ` · ${v.satisfaction}分` : ""}` }))))
      : el("p", { class: "meta", text: "无" })));
    if (d.calls.length) {
      parts.push(section("通话记录", el("ul", { class: "ctx-list" }, ...d.calls.map((call) => el("li", {},
        `${fmtTime(call.started_at)} ${OUTCOMES[call.outcome] || call.outcome || "进行中"}`,
        call.duration_seconds !== null ? ` · ${fmtSpan(call.duration_seconds * 1000)}` : "",
        call.ticket_number ? el("a", { href: `#tickets/${call.ticket_number}`, text: ` ${call.ticket_number}` }) : "")))));
    }
    clear(box, ...parts);
  }

  // The create-ticket dialog: the resident's open tickets first, to link rather than duplicate.
  function fillOpenTickets(box) {
    const open = (SH.context && SH.contextFor === S.convId && SH.context.open_tickets) || [];
    if (!open.length) { clear(box); return; }
    clear(box, el("p", { class: "warn", text: `该居民已有 ${open.length} 张未办结工单，若是同一问题请关联，不要重复创建：` }),
      el("ul", { class: "ctx-list" }, ...open.map((t) => el("li", {}, el("a", { href: `#tickets/${t.number}`, text: t.number }),
        ` ${(S.meta.business_types[t.business_type] || {}).name || t.business_type} · ${t.status_label} · ${t.description}`,
        t.conversation_id === S.convId ? el("span", { class: "tag", text: "已关联" }) : el("button", { type: "button", class: "link-open",
          text: "关联到本会话", onclick: async () => {
            try {
              await api("POST", `/api/conversations/${S.convId}/link_ticket`, { number: t.number });
              $("ticket-dialog").close();
              toast(`已关联工单 ${t.number}`);
              loadConversationTickets();
              loadContext(S.convId);
            } catch (err) { $("tf-error").textContent = err.message; }
          } })))));
  }

  // ---- canned replies in the reply box ---------------------------------------------------------------

  async function loadCanned() {
    if (!isAgentish()) return;
    try { SH.canned = (await api("GET", "/api/canned_replies")).items; } catch (_) { SH.canned = []; }
    if (S.view === "supervise") renderCannedRows();
    renderMyCanned();
    if (slashWord()) renderMenu();  // "/" typed before the list came: show what there is now
  }

  // An agent's own canned replies (我的快捷回复), beside the shared ones.
  function renderMyCanned() {
    const mine = SH.canned.filter((c) => c.personal);
    clear($("my-canned"), ...(mine.length ? mine.map((c) => el("li", { dataset: { cannedId: c.id } },
      el("strong", { text: `/${c.shortcut}` }), ` ${c.title} `,
      el("button", { type: "button", text: "删除", onclick: async () => {
        try { await api("DELETE", `/api/canned_replies/${c.id}`); toast("快捷回复已删除"); loadCanned(); } catch (err) { toast(err.message, true); }
      } }))) : [el("li", { class: "meta", text: "还没有自己的快捷回复" })]));
  }

  $("my-canned-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { shortcut: $("mc-shortcut").value.trim(), title: $("mc-title").value.trim(), text: $("mc-text").value.trim(),
      personal: true };
    try {
      await api("POST", "/api/canned_replies", body);
      toast("已添加到我的快捷回复");
      $("my-canned-form").reset();
      loadCanned();
    } catch (err) { toast(err.message, true); }
  });

  function placeholders() {
    const c = (SH.context && SH.contextFor === S.convId && SH.context.customer) || null;
    const learned = (S.conv && S.conv.slots && S.conv.slots.learned) || {};
    const linked = (S.convId && S.convTickets && S.convTickets.for === S.convId && S.convTickets.items[0]) || null;
    const ticket = (linked && linked.number) || (SH.context && SH.context.open_tickets[0] && SH.context.open_tickets[0].number);
    // The name is masked (高**): the resident is addressed by surname, never shown their own masked name.
    const surname = c && c.name && /\*/.test(c.name) ? c.name[0] : "";
    return { 户号: c ? c.account_number : learned.account_number, 姓名: surname ? `${surname}先生/女士` : "",
      地址: c ? c.address : learned.address,
      // The phone the matter is about: the conversation's ticket's, then what the resident said, then the account's.
      电话: (linked && linked.contact_phone) || learned.phone || SH.context?.phone || (c && c.phones[0]),
      工单号: ticket, 坐席: S.me.display_name };
  }

  function fill(text) {
    const values = placeholders();
    // An unknown name is left out (您好，{姓名} → 您好，); other unknowns stay for the agent to fill by hand.
    return text.replace(/\{(户号|姓名|地址|电话|工单号|坐席)\}/g, (whole, key) => values[key] || (key === "姓名" ? "" : whole));
  }

  function slashWord() {  // the "/word" being typed at the caret, if any
    const box = $("reply-text");
    const before = box.value.slice(0, box.selectionStart);
    const m = before.match(/(^|\s)\/([^\s/]*)$/);
    return m ? { start: before.length - m[2].length - 1, word: m[2] } : null;
  }

  function renderMenu() {
    const menu = $("canned-menu");
    const slash = slashWord();
    SH.menu = slash ? SH.canned.filter((c) => c.shortcut.includes(slash.word) || c.title.includes(slash.word)).slice(0, 8) : [];
    if (slash && !SH.menu.length) {  // a hint, not a choice: what there is, and how to add one
      menu.hidden = false;
      clear(menu, el("li", { class: "hint", role: "note" }, el("strong", { text: SH.canned.length ? "没有匹配的快捷回复" : "暂无快捷回复" }),
        el("div", { class: "meta", text: "可在下方“我的快捷回复”添加自己的；共用的快捷回复由主管在“坐席监控 → 快捷回复”中添加。" })));
      return;
    }
    menu.hidden = !SH.menu.length;
    SH.menuIndex = Math.min(SH.menuIndex, Math.max(SH.menu.length - 1, 0));
    clear(menu, ...SH.menu.map((c, i) => el("li", { role: "option", class: i === SH.menuIndex ? "active" : "", dataset: { shortcut: c.shortcut },
      onmousedown: (ev) => { ev.preventDefault(); pick(i); } }, el("strong", { text: `/${c.shortcut}` }), ` ${c.title}`,
      el("div", { class: "meta", text: fill(c.text) }))));
  }

  function pick(i) {
    const c = SH.menu[i];
    const slash = slashWord();
    if (!c || !slash) return;
    const box = $("reply-text");
    const text = fill(c.text);
    box.value = box.value.slice(0, slash.start) + text + box.value.slice(box.selectionStart);
    box.selectionStart = box.selectionEnd = slash.start + text.length;
    $("canned-menu").hidden = true;
    SH.menu = [];
    box.focus();
  }

  $("reply-text").addEventListener("input", () => { SH.menuIndex = 0; renderMenu(); });
  $("reply-text").addEventListener("blur", () => { $("canned-menu").hidden = true; });
  $("reply-text").addEventListener("keydown", (ev) => {
    if ($("canned-menu").hidden || !SH.menu.length) return;
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      SH.menuIndex = (SH.menuIndex + (ev.key === "ArrowDown" ? 1 : SH.menu.length - 1)) % SH.menu.length;
      renderMenu();
    } else if ((ev.key === "Enter" && !ev.ctrlKey && !ev.metaKey) || ev.key === "Tab") {
      ev.preventDefault();
      pick(SH.menuIndex);
    } else if (ev.key === "Escape") {
      $("canned-menu").hidden = true;
    }
  }, true);

  // ---- 会话记录 (history) ------------------------------------------------------------------------------

  function historyQuery(before) {
    const q = new URLSearchParams({ limit: "50" });
    for (const [id, key] of [["h-channel", "channel"], ["h-status", "status"], ["h-agent", "agent"], ["h-since", "since"],
      ["h-until", "until"], ["h-rating", "rating"], ["h-q", "q"]]) {
      const v = $(id).value.trim();
      if (v) q.set(key, v);
    }
    if (before) q.set("before_id", before);
    return q;
  }

  async function loadHistory(more = false) {
    let data;
    try { data = await api("GET", `/api/conversations?${historyQuery(more ? SH.historyBefore : null)}`); } catch (err) { toast(err.message, true); return; }
    SH.historyBefore = data.next_before_id;
    $("history-more").hidden = !SH.historyBefore;
    const rows = data.items.map((c) => el("tr", { dataset: { conversationId: c.id }, onclick: () => { location.hash = `queue/${c.id}`; } },
      el("td", {}, el("a", { href: `#queue/${c.id}`, text: `#${c.id}` })), el("td", { text: CHANNELS[c.channel] || c.channel }),
      el("td", { text: fmtTime(c.created_at) }), el("td", { text: fmtTime(c.closed_at) }),
      el("td", { text: CONV_STATUS[c.status] || c.status }), el("td", { text: c.agent_name || "" }),
      el("td", { text: c.satisfaction ? `${c.satisfaction}分` : "" })));
    if (more) $("history-rows").append(...rows);
    else clear($("history-rows"), ...(rows.length ? rows : [el("tr", { class: "empty-row" }, el("td", { colspan: 7, class: "meta", text: "没有符合条件的会话" }))]));
  }

  let historyReady = false;
  async function showHistory() {
    if (!historyReady) {
      historyReady = true;
      fillSelect($("h-channel"), CHANNELS, "", "全部渠道");
      try {
        const people = await api("GET", "/api/assignees?department=customer_service");
        fillSelect($("h-agent"), Object.fromEntries(people.items.map((p) => [p.username, p.display_name])), "", "全部坐席");
      } catch (_) { /* the filter stays at 全部坐席 */ }
    }
    loadHistory();
  }
  $("history-filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadHistory(); });
  $("history-more").addEventListener("click", () => loadHistory(true));
  for (const id of ["h-channel", "h-status", "h-agent", "h-rating", "h-since", "h-until"]) $(id).addEventListener("change", () => loadHistory());

  // ---- one search box ----------------------------------------------------------------------------------

  $("global-search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = $("gs-q").value.trim();
    if (q) location.hash = `search/${encodeURIComponent(q)}`;
  });

  async function showSearch(q) {
    $("search-title").textContent = q ? `“${q}”的搜索结果` : "搜索";
    const box = $("search-results");
    if (!q) { clear(box); return; }
    $("gs-q").value = q;
    let d;
    try { d = await api("GET", `/api/search?q=${encodeURIComponent(q)}`); } catch (err) { clear(box, el("p", { class: "error", text: err.message })); return; }
    const groups = [];
    if (d.accounts.length) {
      groups.push(section(`户号（${d.accounts.length}）`, el("ul", { class: "ctx-list" }, ...d.accounts.map((a) => el("li", {},
        el("a", { href: `#search/${a.account_number}`, text: a.account_number }), ` ${a.name} `,
        window.HotlineAudit?.revealControl(a.account_number), ` · ${a.area} · ${a.address}`)))));
    }
    if (d.tickets.length) {
      groups.push(section(`工单（${d.tickets.length}）`, el("table", { class: "grid" },
        el("thead", {}, el("tr", {}, ...["工单号", "受理时间", "类型", "地址", "部门", "状态"].map((h) => el("th", { text: h })))),
        el("tbody", { id: "search-tickets" }, ...d.tickets.map((t) => el("tr", { dataset: { number: t.number }, onclick: () => { location.hash = `tickets/${t.number}`; } },
          el("td", {}, el("a", { href: `#tickets/${t.number}`, text: t.number })), el("td", { text: fmtTime(t.created_at) }),
          el("td", { text: (S.meta.business_types[t.business_type] || {}).name || t.business_type }), el("td", { text: t.address || "" }),
          el("td", { text: t.department_name || "" }), el("td", { text: t.status_label })))))));
    }
    if (d.conversations.length) {
      groups.push(section(`会话（${d.conversations.length}）`, el("ul", { class: "ctx-list" }, ...d.conversations.map((v) => el("li", {},
        el("a", { href: `#queue/${v.id}`, text: `${CHANNELS[v.channel] || v.channel}会话 #${v.id}` }),
        ` ${fmtTime(v.created_at)} · ${CONV_STATUS[v.status] || v.status}${v.agent_name ? " · " + v.agent_name : ""}`)))));
    }
    if (d.calls.length) {
      groups.push(section(`通话（${d.calls.length}）`, el("ul", { class: "ctx-list" }, ...d.calls.map((call) => el("li", {},
        `${fmtTime(call.started_at)} ${call.caller} ${OUTCOMES[call.outcome] || call.outcome || "进行中"}`,
        call.ticket_number ? el("a", { href: `#tickets/${call.ticket_number}`, text: ` ${call.ticket_number}` }) : "")))));
    }
    clear(box, ...(groups.length ? groups : [el("p", { class: "empty", text: "没有找到匹配的户号、工单、会话或通话。可以试试完整的户号、电话或工单号。" })]));
  }

  // ---- 坐席监控 (supervisors) ------------------------------------------------------------------------

  async function loadSupervise() {
    let d, queue;
    try { [d, queue] = await Promise.all([api("GET", "/api/supervision/overview"), api("GET", "/api/queue")]); } catch (err) { toast(err.message, true); return; }
    SH.agents = d.agents;
    $("sv-waiting").textContent = d.queue.waiting;
    $("sv-oldest").dataset.since = d.queue.oldest_waiting_since || "";
    tickOldest();
    $("sv-online").textContent = d.agents.filter((a) => a.presence === "online").length;
    $("sv-overdue").textContent = d.overdue_by_department.reduce((n, x) => n + x.overdue, 0);
    clear($("sv-agents"), ...d.agents.map((a) => el("tr", { dataset: { username: a.username } },
      el("td", { text: a.display_name }), el("td", { text: ROLE_NAMES[a.role] || a.role }),
      el("td", {}, el("span", { class: `presence-dot ${a.presence}`, text: PRESENCE[a.presence] })),
      el("td", { text: a.signed_in ? "是" : "否" }), el("td", { text: a.open_conversations }))));
    clear($("sv-conversations"), ...(queue.active.length ? queue.active.map((c) => {
      const select = el("select", { "aria-label": "转派给" }, el("option", { value: "", text: "转派给…" }),
        ...d.agents.filter((a) => a.display_name !== c.agent_name).map((a) => el("option", { value: a.username, text: `${a.display_name}（${PRESENCE[a.presence]}）` })));
      select.addEventListener("change", async () => {
        if (!select.value) return;
        try { await api("POST", `/api/conversations/${c.id}/reassign`, { agent: select.value }); toast(`会话 #${c.id} 已转派`); loadSupervise(); }
        catch (err) { toast(err.message, true); }
      });
      return el("tr", { dataset: { conversationId: c.id } }, el("td", {}, el("a", { href: `#queue/${c.id}`, text: `#${c.id}` })),
        el("td", { text: CHANNELS[c.channel] || c.channel }), el("td", { text: c.agent_name || "" }),
        el("td", { class: "preview", text: c.last_resident_message ? c.last_resident_message.text : "" }), el("td", {}, select));
    }) : [el("tr", {}, el("td", { colspan: 5, class: "meta", text: "暂无接待中的会话" }))]));
    clear($("sv-overdue-rows"), ...(d.overdue_by_department.length ? d.overdue_by_department.map((x) => el("tr", {},
      el("td", { text: x.department_name }), el("td", {}, el("a", { href: "#tickets", class: "bad", text: `${x.overdue} 张`,
        onclick: () => { $("f-department").value = x.department; $("f-overdue").checked = true; $("f-status").value = "open"; } })))) :
      [el("tr", {}, el("td", { colspan: 2, class: "meta", text: "没有超时工单" }))]));
    renderCannedRows();
  }

  function tickOldest() {
    const since = $("sv-oldest").dataset.since;
    $("sv-oldest").textContent = since ? fmtSpan(Date.now() - new Date(since).getTime()) : "—";
    $("sv-oldest").classList.toggle("bad", !!since && Date.now() - new Date(since).getTime() > 3 * 60 * 1000);
  }

  function renderCannedRows() {
    clear($("canned-rows"), ...(SH.canned.length ? SH.canned.map((c) => el("tr", { dataset: { cannedId: c.id } },
      el("td", { text: `/${c.shortcut}${c.personal ? "（仅自己）" : ""}` }), el("td", { text: c.title }), el("td", { text: c.text }),
      el("td", {}, el("button", { type: "button", text: "编辑", onclick: () => {
        $("cr-id").value = c.id; $("cr-shortcut").value = c.shortcut; $("cr-title").value = c.title; $("cr-text").value = c.text;
      } }), el("button", { type: "button", text: "删除", onclick: async () => {
        if (!confirm(`删除快捷回复 /${c.shortcut}？`)) return;
        try { await api("DELETE", `/api/canned_replies/${c.id}`); toast("快捷回复已删除"); loadCanned(); } catch (err) { toast(err.message, true); }
      } })))) : [el("tr", {}, el("td", { colspan: 4, class: "meta", text: "还没有快捷回复" }))]));
  }

  $("canned-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const id = $("cr-id").value;
    const body = { shortcut: $("cr-shortcut").value.trim(), title: $("cr-title").value.trim(), text: $("cr-text").value.trim() };
    try {
      await api(id ? "PUT" : "POST", id ? `/api/canned_replies/${id}` : "/api/canned_replies", body);
      toast(id ? "快捷回复已修改" : "快捷回复已添加");
      $("canned-form").reset();
      $("cr-id").value = "";
      loadCanned();
    } catch (err) { toast(err.message, true); }
  });
  $("cr-reset").addEventListener("click", () => { $("canned-form").reset(); $("cr-id").value = ""; });

  // ---- views and start ----------------------------------------------------------------------------

  function show(view, arg) {
    if (view !== "queue") $("context").hidden = true;
    if (view === "history") showHistory();
    if (view === "search") showSearch(arg || "");
    if (view === "supervise") loadSupervise();
    if (view === "queue" && !arg) { $("context").hidden = true; SH.contextFor = null; }
  }

  let started = null;
  setInterval(() => {
    if (S.me && started !== S.me.id) {  // signed in (again): this person's presence and canned replies
      started = S.me.id;
      $("presence").hidden = !isAgentish();
      loadPresence();
      loadCanned();
    }
    if (!S.me) started = null;
    updateTitle();
    if (S.view === "supervise") tickOldest();
  }, 500);
  window.addEventListener("focus", () => { if (S.view === "queue" && S.convId) { SH.unread.delete(S.convId); updateTitle(); } });

  return { onEvent, show, conversationOpened, fillOpenTickets };
})();
