/** Nest injection tokens of the executor's plain-value providers. */
export const EXECUTOR_CONFIG = Symbol('EXECUTOR_CONFIG');
/** The process's pino logger (runs log through child loggers of it). */
export const EXECUTOR_LOGGER = Symbol('EXECUTOR_LOGGER');
