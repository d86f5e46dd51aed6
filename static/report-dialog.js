/* Faultline's crash-report dialog: what Sentry.showReportDialog() loads from
 * /api/embed/error-page/. It runs in the application's page, so it touches nothing but the
 * one wrapper it adds: every text goes in through textContent (never as markup), styles are
 * set on the elements (a <style> tag could be refused by the page's CSP), and it closes by
 * removing the wrapper and posting the message the SDK's onClose listens for. The server
 * appends the call with the configuration: (function (config) {...})({...}); */
(function (config) {
  "use strict";
  if (typeof document === "undefined" || !document.body) {
    return;
  }
  var text = config.text;
  var endpoint =
    (document.currentScript && document.currentScript.src) || config.endpoint;

  var previous = document.querySelector(".sentry-error-embed-wrapper");
  if (previous) {
    previous.parentNode.removeChild(previous);
  }

  function element(tag, style, content) {
    var node = document.createElement(tag);
    Object.keys(style || {}).forEach(function (key) {
      node.style[key] = style[key];
    });
    if (content) {
      node.textContent = content;
    }
    return node;
  }

  var font = "-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif";
  var wrapper = element("div", {
    position: "fixed", top: "0", left: "0", right: "0", bottom: "0", zIndex: "2147483647",
    background: "rgba(20, 24, 33, 0.55)", display: "flex", alignItems: "center",
    justifyContent: "center", padding: "16px", fontFamily: font
  });
  wrapper.className = "sentry-error-embed-wrapper";

  var dialog = element("div", {
    background: "#fff", color: "#1f2430", borderRadius: "8px", width: "100%", maxWidth: "480px",
    maxHeight: "100%", overflow: "auto", padding: "24px", boxSizing: "border-box",
    boxShadow: "0 12px 40px rgba(0, 0, 0, 0.3)", fontSize: "15px", lineHeight: "1.45"
  });
  dialog.className = "sentry-error-embed";
  dialog.setAttribute("role", "dialog");
  dialog.setAttribute("aria-modal", "true");
  dialog.setAttribute("aria-labelledby", "sentry-error-embed-title");

  var title = element("h2", { margin: "0 0 6px", fontSize: "20px" }, text.title);
  title.id = "sentry-error-embed-title";
  dialog.appendChild(title);
  [text.subtitle, text.subtitle2].forEach(function (line) {
    if (line) {
      dialog.appendChild(element("p", { margin: "0 0 6px", color: "#4a5263" }, line));
    }
  });

  var form = element("form", { marginTop: "16px" });
  form.noValidate = true;
  var inputs = {};

  function field(name, label, tag, type, value) {
    var id = "sentry-error-embed-" + name;
    var row = element("div", { marginBottom: "12px" });
    var caption = element("label", { display: "block", fontWeight: "600", marginBottom: "4px" }, label);
    caption.htmlFor = id;
    var input = element(tag, {
      display: "block", width: "100%", boxSizing: "border-box", padding: "8px 10px",
      border: "1px solid #c5cad5", borderRadius: "4px", font: "inherit", color: "inherit",
      background: "#fff"
    });
    input.id = id;
    input.name = name;
    if (type) {
      input.type = type;
    }
    if (tag === "textarea") {
      input.rows = 5;
      input.style.resize = "vertical";
    }
    input.value = value || "";
    inputs[name] = input;
    row.appendChild(caption);
    row.appendChild(input);
    form.appendChild(row);
  }

  field("name", text.labelName, "input", "text", config.name);
  field("email", text.labelEmail, "input", "email", config.email);
  field("comments", text.labelComments, "textarea", null, "");

  var message = element("p", { margin: "0 0 12px", minHeight: "1em" });
  message.setAttribute("role", "alert");
  form.appendChild(message);

  var buttons = element("div", { display: "flex", gap: "8px", justifyContent: "flex-end", flexWrap: "wrap" });
  var close = element("button", {
    padding: "8px 14px", border: "1px solid #c5cad5", borderRadius: "4px", background: "#fff",
    color: "#1f2430", font: "inherit", cursor: "pointer"
  }, text.labelClose);
  close.type = "button";
  close.className = "sentry-error-embed-close";
  var submit = element("button", {
    padding: "8px 14px", border: "1px solid #3b5bdb", borderRadius: "4px", background: "#3b5bdb",
    color: "#fff", font: "inherit", fontWeight: "600", cursor: "pointer"
  }, text.labelSubmit);
  submit.type = "submit";
  buttons.appendChild(close);
  buttons.appendChild(submit);
  form.appendChild(buttons);
  dialog.appendChild(form);
  wrapper.appendChild(dialog);

  function say(content, isError) {
    message.textContent = content;
    message.style.color = isError ? "#c92a2a" : "#2b8a3e";
  }

  function markInvalid(errors) {
    Object.keys(inputs).forEach(function (name) {
      var bad = Object.prototype.hasOwnProperty.call(errors, name);
      inputs[name].style.borderColor = bad ? "#c92a2a" : "#c5cad5";
      inputs[name].setAttribute("aria-invalid", bad ? "true" : "false");
    });
  }

  function closeDialog() {
    if (!wrapper.parentNode) {
      return;
    }
    wrapper.parentNode.removeChild(wrapper);
    document.removeEventListener("keydown", onKey, true);
    window.postMessage("__sentry_reportdialog_closed__", "*");
  }

  function onKey(event) {
    if (event.key === "Escape") {
      closeDialog();
    } else if (event.key === "Tab") {
      // Keep the focus inside the dialog while it is open.
      var focusable = dialog.querySelectorAll("input, textarea, button");
      var first = focusable[0];
      var last = focusable[focusable.length - 1];
      if (event.shiftKey && document.activeElement === first) {
        last.focus();
        event.preventDefault();
      } else if (!event.shiftKey && document.activeElement === last) {
        first.focus();
        event.preventDefault();
      }
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submit.disabled = true;
    var body = Object.keys(inputs).map(function (name) {
      return encodeURIComponent(name) + "=" + encodeURIComponent(inputs[name].value);
    }).join("&");
    var request = new XMLHttpRequest();
    request.open("POST", endpoint, true);
    request.setRequestHeader("Content-Type", "application/x-www-form-urlencoded");
    request.onreadystatechange = function () {
      if (request.readyState !== 4) {
        return;
      }
      submit.disabled = false;
      if (request.status === 200) {
        markInvalid({});
        Object.keys(inputs).forEach(function (name) {
          inputs[name].parentNode.style.display = "none";
        });
        submit.style.display = "none";
        say(text.successMessage, false);
        close.focus();
      } else if (request.status === 400) {
        var errors = {};
        try {
          errors = JSON.parse(request.responseText).errors || {};
        } catch (ignored) {
          errors = {};
        }
        markInvalid(errors);
        say(text.errorFormEntry, true);
      } else {
        say(text.errorGeneric, true);
      }
    };
    request.send(body);
  });

  close.addEventListener("click", closeDialog);
  wrapper.addEventListener("click", function (event) {
    if (event.target === wrapper) {
      closeDialog();
    }
  });
  document.addEventListener("keydown", onKey, true);
  document.body.appendChild(wrapper);
  (inputs.name.value ? (inputs.email.value ? inputs.comments : inputs.email) : inputs.name).focus();
})
