import { BaseChatModel, type BaseChatModelCallOptions } from "@langchain/core/language_models/chat_models";
import type { BaseMessage } from "@langchain/core/messages";
import type { ChatResult } from "@langchain/core/outputs";
import { OfflineChatModel } from "../../models/offline/model.js";

/**
 * A chat model that never answers: each call waits until its abort signal fires, and records that it did.
 * Shows that cancel and deadlines reach model calls.
 */
export class HangingModel extends BaseChatModel {
  started = 0;
  aborted = 0;

  constructor() {
    super({});
  }

  _llmType(): string {
    return "hanging";
  }

  override bindTools(): ReturnType<BaseChatModel["withConfig"]> {
    return this.withConfig({});
  }

  override withStructuredOutput(): never {
    return this as never;
  }

  async _generate(_messages: BaseMessage[], options: BaseChatModelCallOptions): Promise<ChatResult> {
    this.started++;
    return new Promise((_, reject) => {
      const signal = options.signal;
      if (!signal) return; // never settles: a test without a signal would hang, which is the point of the check
      signal.addEventListener("abort", () => {
        this.aborted++;
        reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
      });
    });
  }
}

/**
 * The offline model, but its first `failures` calls throw as a flaky model server would. With `about`, only calls
 * whose conversation mentions it count, so a stray task of another test that the same worker picks up cannot
 * use the failures up.
 */
export class FlakyModel extends OfflineChatModel {
  calls = 0;

  constructor(
    private readonly failures: number,
    private readonly about?: string,
  ) {
    super();
  }

  override async _generate(...args: Parameters<OfflineChatModel["_generate"]>): Promise<ChatResult> {
    const [messages] = args;
    const concerned =
      this.about === undefined ||
      messages.some((m) =>
        (typeof m.content === "string" ? m.content : JSON.stringify(m.content)).includes(this.about!),
      );
    if (concerned && this.calls++ < this.failures) throw new Error("model server hiccup");
    return super._generate(...args);
  }
}
