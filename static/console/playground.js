// The chat playground: streams an answer through the gateway in the chosen API format, with a one-time key
// minted for that answer alone (held in a local variable for one request, never put in the page), then
// shows the answer's tokens, cost and time to first token from its generation record. Stop aborts the
// request: the gateway cancels the upstream and bills what was produced.
(function () {
  "use strict";
  const form = document.getElementById("playground");
  if (!form) return;
  const $ = (id) => document.getElementById(id);
  const transcript = $("transcript"), errorBox = $("pg-error");
  const sendButton = $("pg-send"), stopButton = $("pg-stop"), clearButton = $("pg-clear");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const history = []; // the conversation so far: {role: "user" | "assistant", content: string}
  let controller = null;

  const ERROR_WORDS = {
    insufficient_credits: "Not enough credits for this answer's worst case. Add credits, or lower Max tokens.",
    key_limit_exceeded: "This workspace's playground spending limit is reached.",
    model_not_allowed: "This model may not be used from here.",
    context_length_exceeded: "The conversation is longer than this model's context. Start a new chat.",
    rate_limit_exceeded: "Too many requests at once: wait a moment and send again.",
    workspace_locked: "An operator locked this workspace: requests are refused.",
    provider_rate_limit: "The model's provider is rate limiting. Try again shortly, or pick another model.",
    provider_overloaded: "The model's provider is overloaded. Try again shortly, or pick another model.",
    provider_unavailable: "The model's provider could not be reached. Try another model.",
    provider_timeout: "The model's provider took too long to answer.",
  };

  // --- the three formats: a request body, and what an event of its stream says -------------------------
  const FORMATS = {
    chat_completions: {
      body(s) {
        const messages = s.system ? [{ role: "system", content: s.system }, ...s.messages] : s.messages;
        return { model: s.model, messages, temperature: s.temperature, max_tokens: s.maxTokens, stream: true };
      },
      read(name, data) {
        if (data === "[DONE]") return { done: true };
        const event = JSON.parse(data);
        if (event.error) return { error: event.error };
        const delta = event.choices && event.choices[0] && event.choices[0].delta;
        return { text: (delta && delta.content) || "" };
      },
    },
    responses: {
      body(s) {
        const input = s.messages.map((m) => ({ role: m.role, content: m.content }));
        const body = { model: s.model, input, temperature: s.temperature, max_output_tokens: s.maxTokens, stream: true };
        if (s.system) body.instructions = s.system;
        return body;
      },
      read(name, data) {
        const event = JSON.parse(data);
        const type = name || event.type;
        if (type === "response.output_text.delta") return { text: event.delta };
        if (type === "error") return { error: event.error || event };
        if (type === "response.failed") return { error: event.response.error };
        if (type === "response.completed" || type === "response.incomplete") return { done: true };
        return {};
      },
    },
    messages: {
      body(s) {
        const body = { model: s.model, messages: s.messages, max_tokens: s.maxTokens, temperature: s.temperature, stream: true };
        if (s.system) body.system = s.system;
        return body;
      },
      read(name, data) {
        const event = JSON.parse(data);
        const type = name || event.type;
        if (type === "content_block_delta" && event.delta.type === "text_delta") return { text: event.delta.text };
        if (type === "error") return { error: event.error };
        if (type === "message_stop") return { done: true };
        return {};
      },
    },
  };

  // Server-sent events from a fetch body: yields {name, data} per event (comments are keep-alives).
  async function* events(body, signal) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "", data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) yield { name, data: data.join("\n") };
      }
      if (signal.aborted) return;
    }
  }

  // Shows what went wrong in words (text and nodes, e.g. a link to add credits); nothing hides the box.
  function say(parts) {
    errorBox.replaceChildren();
    if (!parts) { errorBox.hidden = true; return; }
    errorBox.append(...[].concat(parts));
    errorBox.hidden = false;
  }

  function errorWords(error) {
    const code = error.code || error.type || "";
    const words = ERROR_WORDS[code] || error.message || "The request failed.";
    const text = document.createElement("span");
    text.textContent = `${words} (${code || "error"})`;
    if (code === "insufficient_credits") {
      const link = document.createElement("a");
      link.href = form.dataset.creditsUrl;
      link.textContent = "Add credits";
      return [text, " ", link];
    }
    return [text];
  }

  function bubble(role, text) {
    const empty = transcript.querySelector(".empty");
    if (empty) empty.remove();
    const item = document.createElement("li");
    item.className = role;
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    item.append(body);
    transcript.append(item);
    item.scrollIntoView({ block: "nearest" });
    return item;
  }

  function dollars(micro) {
    // Exact: micro-USD as a decimal string, never through a float.
    const value = BigInt(micro), sign = value < 0n ? "-" : "", abs = value < 0n ? -value : value;
    const whole = abs / 1000000n, fraction = (abs % 1000000n).toString().padStart(6, "0");
    const shown = fraction.replace(/0+$/, "").padEnd(2, "0");
    return `${sign}$${whole}.${shown}`;
  }

  async function showRecord(item, requestId, stopped) {
    const stats = document.createElement("small");
    stats.className = "stats";
    stats.dataset.testid = "answer-stats";
    stats.textContent = stopped ? "Stopped. Counting what was produced…" : "Counting…";
    item.append(stats);
    const url = form.dataset.recordUrl.replace("REQUEST_ID", encodeURIComponent(requestId));
    for (let attempt = 0; attempt < 40; attempt++) {
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.ok) {
        const g = (await response.json()).data;
        const parts = [
          `${g.tokens_prompt} prompt + ${g.tokens_completion} completion tokens`,
          `cost ${dollars(g.cost_micro_usd)}`,
          g.ttft_ms === null ? "no token" : `first token after ${g.ttft_ms} ms`,
          `${g.latency_ms} ms in all`,
        ];
        stats.textContent = (g.status === "cancelled" ? "Stopped: billed for what was produced. " : "") + parts.join(" · ") + " · ";
        stats.dataset.status = g.status;
        stats.dataset.costMicroUsd = g.cost_micro_usd;
        const link = document.createElement("a");
        link.href = form.dataset.activityUrl.replace("REQUEST_ID", encodeURIComponent(requestId));
        link.textContent = "details";
        stats.append(link);
        if (g.status === "cancelled") stats.classList.add("stopped");
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    stats.textContent = "The figures are not recorded yet: see Activity in a moment.";
  }

  function settings() {
    const model = $("pg-model"), format = $("pg-format");
    return {
      model: model.value,
      format: format.value,
      path: format.selectedOptions[0].dataset.path,
      system: $("pg-system").value.trim(),
      temperature: Number($("pg-temperature").value || 0.7),
      maxTokens: Math.max(1, parseInt($("pg-max-tokens").value || "512", 10)),
    };
  }

  async function mintKey() {
    const response = await fetch(form.dataset.keyUrl, {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf },
    });
    if (!response.ok) throw new Error("Could not start the answer: reload the page and sign in again.");
    return (await response.json()).key;
  }

  function busy(on) {
    sendButton.disabled = on;
    stopButton.disabled = !on;
  }

  async function send(message) {
    const s = settings();
    const format = FORMATS[s.format];
    history.push({ role: "user", content: message });
    bubble("user", message);
    const answer = bubble("assistant", "");
    const text = answer.querySelector(".text");
    controller = new AbortController();
    busy(true);
    say("");
    let requestId = null, stopped = false, failed = false;
    try {
      const key = await mintKey();
      const response = await fetch(s.path, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` },
        body: JSON.stringify(format.body({ ...s, messages: history.slice() })),
        signal: controller.signal,
      });
      requestId = response.headers.get("x-request-id");
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        failed = true;
        say(errorWords(body.error || { message: `HTTP ${response.status}` }));
      } else {
        for await (const event of events(response.body, controller.signal)) {
          const read = format.read(event.name, event.data);
          if (read.text) text.textContent += read.text;
          if (read.error) { failed = true; say(errorWords(read.error)); }
          if (read.done) break;
        }
      }
    } catch (error) {
      if (error.name === "AbortError") stopped = true;
      else { failed = true; say([error.message]); }
    } finally {
      controller = null;
      busy(false);
    }
    if (text.textContent) history.push({ role: "assistant", content: text.textContent });
    else if (failed) { history.pop(); answer.remove(); }
    if (requestId && !(failed && !text.textContent)) await showRecord(answer, requestId, stopped);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const input = $("pg-message");
    const message = input.value.trim();
    if (!message || controller) return;
    input.value = "";
    send(message);
  });
  stopButton.addEventListener("click", function () { if (controller) controller.abort(); });
  clearButton.addEventListener("click", function () {
    history.length = 0;
    transcript.replaceChildren();
    say("");
  });
})();
