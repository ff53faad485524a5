import type {
  ChatCompletionFunctionDefinition,
  ChatMessage as TokenizerMessage,
} from 'gpt-tokenizer/functionCalling';
import {
  countChatCompletionTokens,
  countTokens,
  decodeGenerator,
  encode,
} from 'gpt-tokenizer/model/gpt-4o';
import type { ChatMessage, FunctionTool } from '../openai/chat-completion-request';

/**
 * Token counts with the o200k_base encoding (GPT-4o and later), the way OpenAI bills them:
 * message contents plus a fixed per-message overhead, plus the priming of the reply
 * (gpt-tokenizer's `countChatCompletionTokens`, after OpenAI's cookbook).
 */

/** Tokens in a plain string (a completion's content). */
export function countTextTokens(text: string): number {
  return text === '' ? 0 : countTokens(text);
}

/**
 * Prompt tokens of a chat request. Tool definitions count as OpenAI renders them into the prompt;
 * assistant tool calls count their name and arguments plus a small overhead each (OpenAI does not
 * publish that rendering, so this part is an estimate).
 */
export function countPromptTokens(
  messages: readonly ChatMessage[],
  tools: readonly FunctionTool[] = [],
): number {
  const flat: TokenizerMessage[] = messages.map((m) => {
    const out: TokenizerMessage = { role: m.role, content: messageText(m) };
    if ('name' in m && m.name) out.name = m.name;
    return out;
  });
  const functions: ChatCompletionFunctionDefinition[] = tools.map((t) => ({
    name: t.function.name,
    ...(t.function.description === undefined ? {} : { description: t.function.description }),
    ...(t.function.parameters === undefined
      ? {}
      : {
          parameters: t.function.parameters as unknown as NonNullable<
            ChatCompletionFunctionDefinition['parameters']
          >,
        }),
  }));
  const counted = countChatCompletionTokens?.({
    messages: flat,
    ...(functions.length ? { functions } : {}),
  });
  // the gpt-4o model module always has it; the fallback keeps the type honest
  let total = counted ?? flat.reduce((n, m) => n + countTokens(m.content) + 3, 3);
  for (const m of messages) {
    if (m.role !== 'assistant') continue;
    for (const call of m.tool_calls ?? []) {
      total +=
        countTokens(call.function.name) + countTokens(call.function.arguments) + TOOL_CALL_OVERHEAD;
    }
  }
  return total;
}

/** Per tool call, like the function_call metadata overhead of the cookbook. */
const TOOL_CALL_OVERHEAD = 3;

/** The text of a message: a string, or its text parts joined. */
export function messageText(m: ChatMessage): string {
  const content = m.content;
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  return content.map((part) => (part.type === 'text' ? part.text : part.refusal)).join('');
}

/**
 * Splits text into one string per token (a character cut across tokens goes with its last
 * token). Concatenated they give the text back, so streamed deltas add up to exactly the
 * non-streamed content.
 */
export function tokenPieces(text: string): string[] {
  return [...decodeGenerator(encode(text))];
}
