// 报表: the reports view of the console. Plain JavaScript on /api/reports/{name}; charts with Apache ECharts
// (echarts.min.js, loaded by index.html). Every value from the server goes on the page as text.
"use strict";

(function () {
  const REPORTS = [
    ["workload", "受理量"], ["timeliness", "时效"], ["quality", "服务质量"], ["people", "人员绩效"], ["channels", "渠道"],
  ];
  const R = { me: null, meta: null, name: "workload", charts: [], built: false, seq: 0 };
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

  function beijingToday() {
    return new Intl.DateTimeFormat("sv-SE", { timeZone: "Asia/Shanghai" }).format(new Date());
  }

  const isRate = (key) => /(_rate|_share)$/.test(key);
  function fmt(key, value) {
    if (value === null || value === undefined) return "—";
    if (isRate(key) && typeof value === "number") return `${(value * 100).toFixed(1)}%`;
    if (typeof value === "number") return value.toLocaleString("zh-CN");
    return String(value);
  }

  function option(sel, value, text) { return el("option", { value, text }); }

  function build(view) {
    const own = R.me.role === "department";
    const tabs = el("nav", { class: "report-tabs", id: "report-tabs" });
    for (const [name, label] of REPORTS) {
      if (own && name === "channels") continue;  // not kept per department
      tabs.append(el("button", { type: "button", "data-report": name, text: label,
        onclick: () => { R.name = name; load(); } }));
    }
    const today = beijingToday();
    const form = el("form", { id: "report-form", class: "report-form" },
      el("label", {}, "从 ", el("input", { type: "date", id: "r-from", value: `${today.slice(0, 8)}01`, required: true })),
      el("label", {}, "至 ", el("input", { type: "date", id: "r-to", value: today, required: true })),
      el("select", { id: "r-department", hidden: own }), el("select", { id: "r-category" }),
      el("select", { id: "r-business-type" }), el("select", { id: "r-channel" }),
      el("button", { type: "submit", id: "r-submit", text: "查询" }),
      el("a", { id: "r-csv", class: "button", text: "导出 CSV" }),
      el("a", { id: "r-xlsx", class: "button", text: "导出 Excel" }));
    form.addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
    view.replaceChildren(tabs, form, el("p", { id: "r-scope", class: "meta" }),
      el("p", { id: "r-error", class: "error", role: "alert" }), el("div", { id: "r-figures", class: "figures" }),
      el("div", { id: "r-sections" }), el("ul", { id: "r-notes", class: "notes" }));
    const m = R.meta;
    $("r-department").append(option(null, "", "全部部门"),
      ...Object.entries(m.departments).map(([code, name]) => option(null, code, name)));
    $("r-category").append(option(null, "", "全部类别"),
      ...Object.entries(m.categories).map(([code, name]) => option(null, code, name)));
    $("r-business-type").append(option(null, "", "全部业务类型"),
      ...Object.entries(m.business_types).map(([code, bt]) => option(null, code, bt.name)));
    $("r-channel").append(option(null, "", "全部渠道"), ...m.channels.map((c) => option(null, c.name, c.label)));
    R.built = true;
  }

  function params(format) {
    const p = new URLSearchParams({ from: $("r-from").value, to: $("r-to").value });
    for (const [id, key] of [["r-department", "department"], ["r-category", "category"],
      ["r-business-type", "business_type"], ["r-channel", "channel"]]) {
      if ($(id).value && !(id === "r-department" && R.me.role === "department")) p.set(key, $(id).value);
    }
    if (format) p.set("format", format);
    return p.toString();
  }

  async function load() {
    const seq = ++R.seq;
    for (const b of document.querySelectorAll("#report-tabs button")) b.classList.toggle("current", b.dataset.report === R.name);
    $("r-csv").href = `/api/reports/${R.name}?${params("csv")}`;
    $("r-xlsx").href = `/api/reports/${R.name}?${params("xlsx")}`;
    $("r-error").textContent = "";
    let data;
    try {
      const resp = await fetch(`/api/reports/${R.name}?${params()}`, { credentials: "same-origin" });
      data = await resp.json();
      if (!resp.ok) throw new Error((data.error && data.error.message) || `请求失败（${resp.status}）`);
    } catch (err) {
      if (seq === R.seq) $("r-error").textContent = `报表加载失败：${err.message}`;
      return;
    }
    if (seq !== R.seq) return;  // a newer request is on its way
    render(data);
  }

  function render(data) {
    for (const c of R.charts) c.dispose();
    R.charts = [];
    const f = data.filters;
    const scope = [f.department ? R.meta.departments[f.department] : "全部部门",
      f.category ? R.meta.categories[f.category] : null,
      f.business_type ? (R.meta.business_types[f.business_type] || {}).name : null,
      f.channel ? (R.meta.channels.find((c) => c.name === f.channel) || {}).label : null].filter(Boolean);
    $("r-scope").textContent = `${data.title}：${data.from} 至 ${data.to}（北京时间）· ${scope.join(" · ")}`;
    $("r-figures").replaceChildren(...Object.entries(data.figures).map(([key, value]) => el("div", { class: "figure", "data-key": key },
      el("span", { class: "value", text: fmt(key, value) }), el("span", { class: "label", text: data.figure_labels[key] }))));
    $("r-sections").replaceChildren(...data.sections.map(section));
    $("r-notes").replaceChildren(...data.notes.map((n) => el("li", { text: n })));
    for (const s of data.sections) draw(s);
  }

  function section(s) {
    const head = el("tr", {}, ...s.columns.map((c) => el("th", { text: c.label })));
    const rows = s.rows.map((row) => el("tr", {}, ...s.columns.map((c) => {
      if (c.key === "conversation_id" && row.link) return el("td", {}, el("a", { href: row.link, text: `#${row[c.key]}` }));
      return el("td", { text: fmt(c.key, row[c.key]) });
    })));
    return el("section", { class: "report-section", id: `rs-${s.id}` },
      el("h3", { text: s.title }),
      s.chart ? el("div", { class: s.chart.type === "heatmap" ? "chart tall" : "chart", id: `chart-${s.id}` }) : null,
      el("div", { class: "table-wrap" }, el("table", { class: "grid" }, el("thead", {}, head), el("tbody", {}, ...rows))),
      s.note ? el("p", { class: "note", text: s.note }) : null);
  }

  const label = (s, key) => (s.columns.find((c) => c.key === key) || { label: key }).label;

  function draw(s) {
    const node = $(`chart-${s.id}`);
    if (!node || !window.echarts) return;
    const chart = window.echarts.init(node, null, { renderer: "canvas" });
    R.charts.push(chart);
    const c = s.chart;
    const text = { fontSize: 13 };
    let opt;
    if (c.type === "heatmap") {
      const hours = [...Array(24).keys()];
      const data = [];
      let max = 1;
      s.rows.forEach((row, y) => hours.forEach((h) => { const v = row[`h${h}`]; max = Math.max(max, v); data.push([h, y, v]); }));
      opt = { tooltip: { position: "top" }, grid: { left: 50, right: 20, top: 10, bottom: 70 },
        xAxis: { type: "category", data: hours.map((h) => `${h}时`), axisLabel: text },
        yAxis: { type: "category", data: s.rows.map((r) => r[c.y]), axisLabel: text },
        visualMap: { min: 0, max, calculable: true, orient: "horizontal", left: "center", bottom: 5 },
        series: [{ type: "heatmap", data, label: { show: true, fontSize: 11 } }] };
    } else if (c.type === "pie") {
      opt = { tooltip: { trigger: "item" }, legend: { bottom: 0, textStyle: text },
        series: [{ type: "pie", radius: ["35%", "65%"], label: { formatter: "{b}\n{c}（{d}%）", fontSize: 13 },
          data: s.rows.map((r) => ({ name: r[c.x], value: r[c.y[0]] })) }] };
    } else {
      const cats = s.rows.map((r) => String(r[c.x]));
      const value = { type: "value", axisLabel: c.percent ? { formatter: (v) => `${Math.round(v * 100)}%` } : text,
        max: c.percent ? 1 : undefined };
      const category = { type: "category", data: cats, axisLabel: { ...text, interval: 0, rotate: c.horizontal || cats.length < 8 ? 0 : 30,
        width: c.horizontal ? 220 : undefined, overflow: "truncate" } };
      opt = { tooltip: { trigger: "axis", valueFormatter: c.percent ? (v) => (v === null ? "—" : `${(v * 100).toFixed(1)}%`) : undefined },
        legend: { top: 0, textStyle: text }, grid: { left: c.horizontal ? 230 : 60, right: 20, top: 30, bottom: 60 },
        xAxis: c.horizontal ? value : category, yAxis: c.horizontal ? { ...category, inverse: true } : value,
        series: c.y.map((key) => ({ name: label(s, key), type: c.type === "line" ? "line" : "bar",
          data: s.rows.map((r) => r[key]), smooth: c.type === "line" })) };
    }
    chart.setOption(opt);
  }

  window.addEventListener("resize", () => { for (const c of R.charts) c.resize(); });

  window.HotlineReports = {
    show(me, meta) {
      R.me = me;
      R.meta = meta;
      const view = $("reports-view");
      if (!R.built) build(view);
      load();
    },
  };
})();
