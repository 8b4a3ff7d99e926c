/**
 * Stratus's managed Node.js runtime.
 *
 * Started as `node /var/runtime/bootstrap.js` with the function's code in
 * $LAMBDA_TASK_ROOT. It loads the handler named by _HANDLER and serves invocations
 * from the Lambda Runtime API at $AWS_LAMBDA_RUNTIME_API the way Lambda's own Node.js
 * runtime does: the same module resolution, context object, callback and promise
 * semantics, error documents and console log lines.
 *
 * CommonJS, core modules only.
 */

'use strict';

const http = require('http');
const fs = require('fs');
const path = require('path');
const util = require('util');

const RUNTIME_PATH = '/2018-06-01/runtime';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';
// What Lambda says a response may weigh, for the error it reports when it is heavier.
const DEFAULT_MAX_RESPONSE_BYTES = 6291556;
// Over this, a response whose upload the Runtime API cut short was refused for its size.
const HARD_MAX_RESPONSE_BYTES = 6 * 1024 * 1024;
const REQUEST_ID_SYMBOL = Symbol.for('aws.lambda.runtime.requestId');

// ---------------------------------------------------------------------------------------
// Errors

function defineRuntimeError(name) {
  const cls = class extends Error {};
  Object.defineProperty(cls, 'name', { value: name });
  cls.prototype.name = `Runtime.${name}`;
  return cls;
}

const ImportModuleError = defineRuntimeError('ImportModuleError');
const HandlerNotFound = defineRuntimeError('HandlerNotFound');
const MalformedHandlerName = defineRuntimeError('MalformedHandlerName');
const UserCodeSyntaxError = defineRuntimeError('UserCodeSyntaxError');
const NodeJsExit = defineRuntimeError('NodeJsExit');

class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
UnhandledPromiseRejection.prototype.name = 'Runtime.UnhandledPromiseRejection';

function looksLikeError(obj) {
  return (
    obj &&
    typeof obj.name === 'string' &&
    typeof obj.message === 'string' &&
    typeof obj.stack === 'string' &&
    obj.name &&
    obj.message &&
    obj.stack
  );
}

/** The error document posted to the Runtime API. */
function toRapidResponse(error) {
  try {
    if (util.types.isNativeError(error) || looksLikeError(error)) {
      return {
        errorType: error.name,
        errorMessage: error.message,
        trace: String(error.stack).split('\n'),
      };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch (_) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
    };
  }
}

function intoError(err) {
  return err instanceof Error ? err : new Error(err);
}

/** An error's own and enumerable properties, for the log. */
function withEnumerableProperties(value) {
  if (value instanceof Error) {
    const out = Object.assign(
      { errorType: value.name, errorMessage: value.message, code: value.code },
      value,
    );
    if (typeof value.stack === 'string') {
      out.stack = value.stack.split('\n');
    }
    return out;
  }
  return value;
}

/** How an error appears in the log: a tab, then JSON. */
function toFormatted(error) {
  try {
    return '\t' + JSON.stringify(error, (_k, v) => withEnumerableProperties(v));
  } catch (_) {
    return '\t' + JSON.stringify(toRapidResponse(error));
  }
}

function logError(title, err) {
  console.error(title, toFormatted(intoError(err)));
}

// ---------------------------------------------------------------------------------------
// Console

function patchConsole() {
  const levels = [
    ['trace', 'TRACE', 1],
    ['debug', 'DEBUG', 2],
    ['info', 'INFO', 3],
    ['warn', 'WARN', 4],
    ['error', 'ERROR', 5],
    ['fatal', 'FATAL', 6],
  ];
  const wanted = (process.env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase();
  const threshold = (levels.find((l) => l[1] === wanted) || levels[0])[2];
  const write = (level, args) => {
    const line = `${new Date().toISOString()}\t${global[REQUEST_ID_SYMBOL]}\t${level}\t${util.format(...args)}`;
    process.stdout.write(line.replace(/\n/g, '\r') + '\n');
  };
  const nop = () => {};
  for (const [method, level, priority] of levels) {
    // FATAL is always written.
    console[method] =
      priority >= threshold || level === 'FATAL' ? (...args) => write(level, args) : nop;
  }
  console.log = console.info;
}

// ---------------------------------------------------------------------------------------
// Runtime API client

class RuntimeApi {
  constructor(address) {
    const i = address.lastIndexOf(':');
    this.host = (i > 0 ? address.slice(0, i) : address).replace(/^\[|\]$/g, '');
    this.port = i > 0 ? parseInt(address.slice(i + 1), 10) : 80;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  }

  /** One request; resolves to {status, headers, body: Buffer}. */
  request(method, urlPath, body, headers, retried) {
    return new Promise((resolve, reject) => {
      const options = {
        host: this.host,
        port: this.port,
        method,
        path: urlPath,
        agent: this.agent,
        headers: Object.assign({}, headers),
      };
      let payload;
      if (body !== undefined) {
        payload = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
        options.headers['Content-Length'] = payload.length;
      }
      let settled = false;
      const fail = (err) => {
        if (settled) return;
        settled = true;
        // A kept-alive connection the server has meanwhile closed: one more try.
        if (
          req.reusedSocket &&
          !retried &&
          (err.code === 'ECONNRESET' || err.code === 'EPIPE') &&
          !(payload && payload.length > HARD_MAX_RESPONSE_BYTES)
        ) {
          resolve(this.request(method, urlPath, body, headers, true));
        } else {
          reject(err);
        }
      };
      const req = http.request(options, (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('error', fail);
        res.on('end', () => {
          if (settled) return;
          settled = true;
          resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) });
        });
      });
      req.on('error', fail);
      // A write still in flight when the server answers early (413) fails on the socket after
      // the request has settled; the request's own error path already covers it.
      req.on('socket', (socket) => {
        if (!socket.stratusGuarded) {
          socket.stratusGuarded = true;
          socket.on('error', () => {});
        }
      });
      req.end(payload);
    });
  }

  async nextInvocation() {
    const res = await this.request('GET', `${RUNTIME_PATH}/invocation/next`);
    if (res.status !== 200) {
      throw new Error(
        `Runtime API answered ${res.status} to GET /runtime/invocation/next: ${res.body.toString('utf8', 0, 200)}`,
      );
    }
    return { headers: res.headers, body: res.body.toString('utf8') };
  }

  async postResponse(id, text) {
    const payload = Buffer.from(text, 'utf8');
    let res;
    try {
      res = await this.request(
        'POST',
        `${RUNTIME_PATH}/invocation/${encodeURIComponent(id)}/response`,
        payload,
        { 'Content-Type': 'application/json' },
      );
    } catch (err) {
      if (payload.length <= HARD_MAX_RESPONSE_BYTES) throw err;
      // The upload was cut short, as the Runtime API does with an oversized response.
      res = { status: 413, body: Buffer.alloc(0) };
    }
    if (res.status === 413) {
      const m = /\((\d+) bytes\)/.exec(res.body.toString('utf8'));
      const limit = m ? m[1] : DEFAULT_MAX_RESPONSE_BYTES;
      await this.postErrorDocument(id, {
        errorType: 'Function.ResponseSizeTooLarge',
        errorMessage: `Response payload size exceeded maximum allowed payload size (${limit} bytes).`,
        trace: [],
      });
    }
  }

  async postErrorDocument(id, doc) {
    try {
      await this.request(
        'POST',
        `${RUNTIME_PATH}/invocation/${encodeURIComponent(id)}/error`,
        JSON.stringify(doc),
        { 'Content-Type': 'application/json', [ERROR_TYPE_HEADER]: 'Unhandled' },
      );
    } catch (_) {
      // The invocation is over either way; the next GET tells whether the API is there.
    }
  }

  postInvocationError(error, id) {
    return this.postErrorDocument(id, toRapidResponse(error));
  }

  async postInitError(error) {
    const doc = toRapidResponse(error);
    try {
      await this.request('POST', `${RUNTIME_PATH}/init/error`, JSON.stringify(doc), {
        'Content-Type': 'application/json',
        [ERROR_TYPE_HEADER]: doc.errorType,
      });
    } catch (_) {
      // Nothing more to be done: the process exits next.
    }
  }
}

// ---------------------------------------------------------------------------------------
// Loading the handler

function hasPackageJsonTypeModule(folder) {
  for (;;) {
    if (folder.endsWith('/node_modules')) return false;
    const pj = path.join(folder, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        const pkg = JSON.parse(fs.readFileSync(pj, 'utf8'));
        if (pkg) return pkg.type === 'module';
      } catch (e) {
        console.warn(`${pj} cannot be read, it will be ignored for ES module detection purposes.`, e);
        return false;
      }
    }
    const parent = path.dirname(folder);
    if (parent === folder) return false;
    folder = parent;
  }
}

function requireIfExists(file) {
  return fs.existsSync(file) ? require(file) : undefined;
}

async function importIfExists(file) {
  if (!fs.existsSync(file)) return undefined;
  return import(require('url').pathToFileURL(file).href);
}

async function loadModule(appRoot, moduleRoot, moduleName) {
  const base = path.resolve(appRoot, moduleRoot, moduleName);
  // A file named exactly so, or a directory (its package.json "main" or index.js).
  const exact = requireIfExists(base);
  if (exact) return exact;
  const esm = hasPackageJsonTypeModule(path.dirname(base));
  if (!esm) {
    const cjs = requireIfExists(base + '.js');
    if (cjs) return cjs;
  }
  const loaded =
    (esm && (await importIfExists(base + '.js'))) ||
    (await importIfExists(base + '.mjs')) ||
    requireIfExists(base + '.cjs');
  if (loaded) return loaded;
  // Node's own lookup (node_modules, packages), from the task root rather than from here.
  return require(require.resolve(moduleName, { paths: [appRoot, moduleRoot] }));
}

async function loadHandler(appRoot, fullHandler) {
  if (fullHandler.includes('..')) {
    throw new MalformedHandlerName(
      `'${fullHandler}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const moduleAndHandler = path.basename(fullHandler);
  const moduleRoot = fullHandler.substring(0, fullHandler.indexOf(moduleAndHandler));
  const match = /^([^.]*)\.(.*)$/.exec(moduleAndHandler);
  if (!match) {
    throw new MalformedHandlerName('Bad handler');
  }
  const [, moduleName, handlerPath] = match;

  let userModule;
  try {
    userModule = await loadModule(appRoot, moduleRoot, moduleName);
  } catch (e) {
    if (e instanceof SyntaxError) throw new UserCodeSyntaxError(e);
    if (e && e.code === 'MODULE_NOT_FOUND') throw new ImportModuleError(e);
    throw e;
  }
  const fn = handlerPath.split('.').reduce((obj, key) => obj && obj[key], userModule);
  if (!fn) {
    throw new HandlerNotFound(`${fullHandler} is undefined or not exported`);
  }
  if (typeof fn !== 'function') {
    throw new HandlerNotFound(`${fullHandler} is not a function`);
  }
  return fn;
}

// ---------------------------------------------------------------------------------------
// The invocation loop

// What runs when the event loop empties; one slot, replaced as an invocation progresses.
let beforeExit = () => {};
const setBeforeExit = (fn) => {
  beforeExit = fn;
};
const resetBeforeExit = () => {
  beforeExit = () => {};
};

function isPromise(value) {
  return value && typeof value.then === 'function';
}

function parseHeaderJson(text, name) {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

/**
 * The callback, the callback half of the context (succeed, fail, done and
 * callbackWaitsForEmptyEventLoop) and a function marking the invocation as answered.
 * Only the first call to any of them counts.
 */
function buildCallbacks(api, id, scheduleNext) {
  let completed = false;
  let waitForEmptyEventLoop = true;

  const postError = (err) => {
    logError('Invoke Error', err);
    api.postInvocationError(err, id).then(scheduleNext);
  };
  const complete = (result) => {
    if (completed) {
      console.error(
        'Invocation has already been reported as done. Cannot call complete more than once per invocation.',
      );
      return;
    }
    completed = true;
    let text;
    try {
      text = JSON.stringify(result === undefined ? null : result);
    } catch (_) {
      postError(new Error('Unable to stringify response body'));
      return;
    }
    if (text === undefined) text = 'null'; // a function or a symbol
    api.postResponse(id, text).then(scheduleNext, scheduleNext);
  };
  const callback = (err, result) => {
    resetBeforeExit();
    if (err !== undefined && err !== null) {
      postError(err);
    } else if (!waitForEmptyEventLoop) {
      complete(result);
    } else {
      setBeforeExit(() => setImmediate(() => complete(result)));
    }
  };
  const done = (err, result) => {
    resetBeforeExit();
    if (err !== undefined && err !== null) {
      postError(err);
    } else {
      complete(result);
    }
  };

  let finished = false;
  const once =
    (fn) =>
    (...args) => {
      if (!finished) {
        fn(...args);
        finished = true;
      }
    };
  const context = {
    get callbackWaitsForEmptyEventLoop() {
      return waitForEmptyEventLoop;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waitForEmptyEventLoop = value;
    },
    succeed: once((result) => done(null, result)),
    fail: once((err) => (err === undefined || err === null ? done('handled') : done(err, null))),
    done: once(done),
  };
  return [once(callback), context, () => (completed = true)];
}

class Runtime {
  constructor(api, handler, errorCallbacks) {
    this.api = api;
    this.handler = handler;
    this.isAsync = handler.constructor && handler.constructor.name === 'AsyncFunction';
    this.errorCallbacks = errorCallbacks;
  }

  scheduleIteration() {
    setImmediate(() => {
      this.handleOnce().catch((err) => {
        console.log(`Unexpected Top Level Error: ${err.toString()}`);
        this.errorCallbacks.uncaughtException(err);
      });
    });
  }

  async handleOnce() {
    const { headers, body } = await this.api.nextInvocation();
    const id = headers['lambda-runtime-aws-request-id'];
    global[REQUEST_ID_SYMBOL] = id;
    const scheduleNext = () => this.scheduleIteration();
    const [callback, context, markCompleted] = buildCallbacks(this.api, id, scheduleNext);

    try {
      // An error outside the handler's promise fails this invocation, then the process.
      this.errorCallbacks.uncaughtException = (error) => {
        this.api.postInvocationError(error, id).then(() => process.exit(129));
      };
      this.errorCallbacks.unhandledRejection = (error) => {
        this.api.postInvocationError(error, id).then(() => process.exit(128));
      };
      // The event loop emptied with no answer given.
      setBeforeExit(() => {
        markCompleted();
        if (this.isAsync) {
          const err = new NodeJsExit(
            'The event loop became empty before the handler\'s promise settled: a Promise that never resolves is the usual cause.',
          );
          logError('Invoke Error', err);
          this.api.postInvocationError(err, id).then(scheduleNext);
        } else {
          this.api.postResponse(id, 'null').then(scheduleNext, scheduleNext);
        }
      });

      const trace = headers['lambda-runtime-trace-id'];
      if (trace) {
        process.env._X_AMZN_TRACE_ID = trace;
      } else {
        delete process.env._X_AMZN_TRACE_ID;
      }
      const deadline = headers['lambda-runtime-deadline-ms'];
      Object.assign(context, {
        functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
        functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
        memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
        logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
        logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
        clientContext: parseHeaderJson(headers['lambda-runtime-client-context'], 'ClientContext'),
        identity: parseHeaderJson(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
        invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
        awsRequestId: id,
        getRemainingTimeInMillis: () => deadline - Date.now(),
      });

      const event = body === '' ? null : JSON.parse(body);
      const result = this.handler(event, context, callback);
      if (isPromise(result)) {
        result.then(context.succeed, context.fail).catch(context.fail);
      }
    } catch (err) {
      callback(err);
    }
  }
}

async function main() {
  patchConsole();
  const address = process.env.AWS_LAMBDA_RUNTIME_API;
  if (!address) {
    process.stderr.write('AWS_LAMBDA_RUNTIME_API is not set\n');
    process.exit(1);
  }
  const api = new RuntimeApi(address);

  // Until the first invocation, a stray error is an init error.
  const errorCallbacks = {
    uncaughtException: (error) => api.postInitError(error).then(() => process.exit(129)),
    unhandledRejection: (error) => api.postInitError(error).then(() => process.exit(128)),
  };
  process.on('uncaughtException', (error) => {
    logError('Uncaught Exception', error);
    errorCallbacks.uncaughtException(error);
  });
  process.on('unhandledRejection', (reason, promise) => {
    const error = new UnhandledPromiseRejection(reason, promise);
    logError('Unhandled Promise Rejection', error);
    errorCallbacks.unhandledRejection(error);
  });
  process.on('beforeExit', () => beforeExit());

  const appRoot = process.env.LAMBDA_TASK_ROOT || process.cwd();
  if (!process.env.NODE_PATH) {
    // Where Lambda's Node.js runtime finds layers' packages with require().
    const major = process.versions.node.split('.')[0];
    process.env.NODE_PATH = [
      `/opt/nodejs/node${major}/node_modules`,
      '/opt/nodejs/node_modules',
      '/var/runtime/node_modules',
      '/var/runtime',
      appRoot,
    ].join(':');
    require('module')._initPaths();
  }
  let handler;
  try {
    handler = await loadHandler(appRoot, process.env._HANDLER || '');
  } catch (error) {
    logError('Uncaught Exception', error);
    await api.postInitError(error);
    process.exit(129);
  }
  new Runtime(api, handler, errorCallbacks).scheduleIteration();
}

main();
